"""Benchmark: the same job embedded, and distributed with one and with two workers.

Distributed runs use the real services of the machine (PostgreSQL, Redis as broker,
event bus and rate-limit store, a Chroma server), with the process harness of the
distributed tests. Each configuration gets a warm-up job (models load in the workers),
then ``--rounds`` timed jobs of the shared English recordings, upload → completed over
HTTP; the medians and their ratios to embedded are printed.

    .venv/bin/python -m bench distributed [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from tests.distributed.cluster import Cluster, Proc, free_port, wait_http

from bench.pipeline import english

PREFIX = "/api/public/bulk"
THREADS = "2"


def run_job(client: httpx.Client, files: list[Path], job_id: str) -> float:
    """Seconds from the first upload to ``completed``."""
    t0 = time.perf_counter()
    docs = []
    for path in files:
        with path.open("rb") as f:
            r = client.post("/uploads", files={"file": (path.name, f)})
        docs.append(r.raise_for_status().json()["document_id"])
    body = {
        "job_id": job_id,
        "platform": "documents",
        "input_method": "upload",
        "uploaded_documents": docs,
        "embedding_model": {"id": "local"},
        "vector_db": {"id": "chroma"},
        "settings": {"chunkSize": 256, "chunkOverlap": 32, "maxTokens": 8192},
    }
    client.post("/process", json=body).raise_for_status()
    while True:
        status = client.get(f"/job/{job_id}/status").json()
        if status["result"] is not None:
            break
        time.sleep(0.05)
    assert status["status"] == "completed", status
    return time.perf_counter() - t0


def measure(client: httpx.Client, name: str, rounds: int) -> float:
    """Warm up, then the median of ``rounds`` jobs."""
    files = english()
    run_job(client, files[:1], f"{name}-warm")
    times = [run_job(client, files, f"{name}-{n}") for n in range(rounds)]
    for n, t in enumerate(times):
        print(f"  {name} round {n + 1}: {t:.2f}s")
    return statistics.median(times)


def embedded(root: Path, rounds: int) -> float:
    """ragcast serve in embedded mode: SQLite, stub broker, workers in the API process."""
    from ragcast.auth import create_key
    from ragcast.context import build_context
    from ragcast.settings import Settings

    data = root / "embedded"
    ctx = build_context(Settings(data_dir=data))
    with ctx.db.session() as s:
        key, _ = create_key(s, "bench")
    ctx.db.dispose()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGCAST_")}
    env.update(
        RAGCAST_WORKERS=THREADS,
        RAGCAST_RATE_LIMIT_PROCESS="1000/hour",
        RAGCAST_RATE_LIMIT_READ="100000/hour",
        RAGCAST_DATA_DIR=str(data),
        HF_HUB_OFFLINE="1",
    )
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "ragcast.api.app:create_app",
           "--port", str(port), "--log-level", "warning"]  # fmt: skip
    proc = Proc("embedded", cmd, env, root / "embedded.log")
    proc.start()
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz")
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}{PREFIX}",
            headers={"Authorization": f"Bearer {key}"},
            timeout=120,
        ) as c:
            return measure(c, "embedded", rounds)
    finally:
        proc.stop()


def distributed(root: Path, workers: int, rounds: int) -> float:
    """One API process and ``workers`` worker processes on PostgreSQL, Redis and Chroma."""
    cluster = Cluster(root)
    try:
        base = cluster.env
        cluster.env = lambda: {  # type: ignore[method-assign]
            **base(),
            "RAGCAST_WORKERS": THREADS,
            "RAGCAST_RATE_LIMIT_PROCESS": "1000/hour",
            "RAGCAST_RATE_LIMIT_READ": "100000/hour",
        }
        cluster.api()
        for n in range(workers):
            cluster.worker(f"worker{n}")
        with cluster.client() as c:
            return measure(c, f"distributed-{workers}w", rounds)
    finally:
        cluster.close()


def main(argv: list[str] | None = None) -> None:
    """Run the three configurations and print the ratios."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ragcast-bench-") as tmp:
        root = Path(tmp)
        (root / "e").mkdir()
        (root / "d1").mkdir()
        (root / "d2").mkdir()
        e = embedded(root / "e", args.rounds)
        d1 = distributed(root / "d1", 1, args.rounds)
        d2 = distributed(root / "d2", 2, args.rounds)
    print(f"embedded (SQLite, in-process workers): {e:.2f}s")
    print(f"distributed, 1 worker: {d1:.2f}s  ratio to embedded {d1 / e:.3f}")
    print(
        f"distributed, 2 workers: {d2:.2f}s  ratio to embedded {d2 / e:.3f}  "
        f"speed-up over 1 worker {d1 / d2:.3f}"
    )


if __name__ == "__main__":
    main()
