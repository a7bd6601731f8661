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
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from tests.distributed.cluster import Cluster

from bench.pipeline import english
from bench.scale import embedded_server

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
    with embedded_server(root) as (_, client), client() as c:
        return measure(c, "embedded", rounds)


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
