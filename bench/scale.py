"""Benchmark: many small items, and a 10,000-item job, embedded and distributed.

- ``small``: N one-line text documents (default 500) in one job. ragcast's milliseconds
  per item, from the job's acceptance to ``completed`` over HTTP (parsing, chunking,
  embedding, Chroma and the job store included), against bare sentence-transformers
  ``encode`` in batches plus Chroma ``upsert`` on the same texts, in the same run
  (target: <= 3x).
- ``large``: a 10,000-item job in embedded mode (SQLite, workers in the API process) and
  in distributed mode (PostgreSQL, Redis, a Chroma server, an API process and two worker
  processes). While it runs, four clients read its status and one reads items pages;
  their latencies are printed (p50/p99). Afterwards: completed, and every item indexed
  exactly once (items, chunks and vectors counted in the stores).

The documents are written to the server's upload folder and recorded in its store
directly (what ``POST /uploads`` does), so the clock measures the job, not 10,000 uploads.

    .venv/bin/python -m bench scale [--small 500] [--large 10000] [--cases small,large]
        [--modes embedded,distributed]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import secrets
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import httpx
from tests.conftest import job_body
from tests.distributed.cluster import Cluster, Proc, free_port, wait_http

from ragcast.settings import Settings, local_model_path

PREFIX = "/api/public/bulk"
THREADS = "2"
#: the local embedding model of both sides: the bare script's sentence-transformers model
MODEL = "all-MiniLM-L6-v2"
WORDS = (
    "river market signal window garden engine winter paper music doctor island camera "
    "forest letter bridge silver planet coffee theory ocean battery harbor lantern mirror "
    "village canvas rocket thunder meadow pencil marble castle violin desert glacier "
    "compass falcon orchard pyramid quartz saddle tunnel velvet walnut yacht zephyr "
    "archive budget climate dialect editor fossil gravity horizon insect journal kernel "
    "ledger magnet nectar oxygen portal quiver rhythm sensor timber uniform vessel"
).split()


def texts(n: int, seed: int = 7) -> list[str]:
    """``n`` distinct one-line documents of 12-24 words."""
    rng = random.Random(seed)
    return [
        f"Note {i}: " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(12, 24))) + "."
        for i in range(n)
    ]


def seed_uploads(settings: Settings, lines: list[str], tag: str) -> list[str]:
    """Write each line as a text upload of the store's first user; their document ids."""
    from ragcast.runner.boot import build_context
    from ragcast.store.models import Upload, User

    ctx = build_context(settings)
    folder = settings.data_dir / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    with ctx.db.session() as s:
        user_id = s.query(User.id).order_by(User.id).limit(1).scalar()
        for n, line in enumerate(lines):
            doc = f"doc_{tag}{n:06d}{secrets.token_hex(4)}"
            body = (line + "\n").encode()
            path = folder / f"{doc}.txt"
            path.write_bytes(body)
            rows.append(
                {
                    "document_id": doc,
                    "user_id": user_id,
                    "filename": f"{doc}.txt",
                    "size": len(body),
                    "sha256": hashlib.sha256(body).hexdigest(),
                    "content_type": "text/plain",
                    "kind": "document",
                    "path": str(path),
                }
            )
        s.execute(Upload.__table__.insert(), rows)
    ctx.db.dispose()
    return [r["document_id"] for r in rows]


class Readers:
    """Clients reading a job's status (and items pages) in a loop, keeping latencies."""

    def __init__(self, client_factory: Callable[[], httpx.Client], job_id: str) -> None:
        self.factory = client_factory
        self.job_id = job_id
        self.status_ms: list[float] = []
        self.items_ms: list[float] = []
        self.errors: dict[int, int] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _loop(self, path: str, into: list[float]) -> None:
        with self.factory() as c:
            while not self._stop.is_set():
                t0 = time.perf_counter()
                r = c.get(path)
                into.append((time.perf_counter() - t0) * 1000)
                if r.status_code != 200:
                    self.errors[r.status_code] = self.errors.get(r.status_code, 0) + 1
                time.sleep(0.02)

    def __enter__(self) -> Readers:
        status = f"/job/{self.job_id}/status"
        items = f"/job/{self.job_id}/items?limit=100&offset=5000"
        for path, into in [(status, self.status_ms)] * 4 + [(items, self.items_ms)]:
            t = threading.Thread(target=self._loop, args=(path, into), daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile of ``values`` (0 when empty)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_job(
    c: httpx.Client,
    job_id: str,
    docs: list[str],
    timeout: float,
    readers: Readers | None = None,
) -> dict[str, Any]:
    """Submit a job, wait for it to finish (``readers`` reading from its acceptance on);
    its final status with ``seconds`` added."""
    t0 = time.perf_counter()
    r = c.post(
        "/process",
        json=job_body(
            job_id, docs, settings={"chunkSize": 256, "chunkOverlap": 0, "maxTokens": 8192}
        ),
    )
    r.raise_for_status()
    with readers or nullcontext():
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status: dict[str, Any] = c.get(f"/job/{job_id}/status").json()
            if status["status"] in ("completed", "failed", "cancelled"):
                status["seconds"] = time.perf_counter() - t0
                return status
            time.sleep(0.05)
    raise TimeoutError(f"job {job_id} did not finish in {timeout}s")


def check(settings: Settings, job_id: str, n: int) -> str:
    """Every item of ``job_id`` completed with its one chunk, each vector there once."""
    from sqlalchemy import func, select

    from ragcast.retrieval.layout import job_tenant
    from ragcast.runner.boot import build_context
    from ragcast.store.models import Chunk, Item, Job

    ctx = build_context(settings)
    with ctx.db.session() as s:
        job = s.scalars(select(Job).where(Job.job_id == job_id)).one()
        items = s.scalar(select(func.count(Item.id)).where(Item.job_pk == job.id))
        done = s.scalar(
            select(func.count(Item.id)).where(Item.job_pk == job.id, Item.status == "completed")
        )
        contents = s.scalar(
            select(func.count(func.distinct(Item.content_id))).where(Item.job_pk == job.id)
        )
        chunks = s.scalar(select(func.count(Chunk.id)).join(Item).where(Item.job_pk == job.id))
        collection, owner = job.collection, job_tenant(job.collection, job.user_id)
    vectors = ctx.providers.vector_store("chroma").count(collection, tenant=owner)
    ctx.db.dispose()
    ok = items == done == contents == chunks == n and vectors >= n
    return (
        f"items {items}, completed {done}, distinct contents {contents}, chunks {chunks}, "
        f"vectors in the collection {vectors}: {'PASS' if ok else 'FAIL'}"
    )


# -- the bare script ------------------------------------------------------------------
def bare(lines: list[str], root: Path) -> float:
    """Seconds for bare sentence-transformers ``encode`` in batches + Chroma ``upsert``."""
    import chromadb
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(local_model_path(MODEL), device="cpu")
    model.encode(lines[:32], batch_size=32, show_progress_bar=False)  # warm
    client = chromadb.PersistentClient(path=str(root / f"bare-{secrets.token_hex(3)}"))
    col = client.get_or_create_collection("bare", metadata={"hnsw:space": "cosine"})
    t0 = time.perf_counter()
    vectors = model.encode(
        lines, batch_size=32, normalize_embeddings=True, convert_to_numpy=True,
        show_progress_bar=False,
    )  # fmt: skip
    step = 1000
    for n in range(0, len(lines), step):
        col.upsert(
            ids=[f"c{i}:0" for i in range(n, min(n + step, len(lines)))],
            embeddings=vectors[n : n + step],
            documents=lines[n : n + step],
            metadatas=[{"content_id": f"c{i}", "chunk_index": 0} for i in range(n, n + step)][
                : len(lines[n : n + step])
            ],
        )
    return time.perf_counter() - t0


# -- ragcast --------------------------------------------------------------------------
@contextmanager
def embedded_server(
    root: Path, **env_extra: str
) -> Iterator[tuple[Settings, Callable[[], httpx.Client]]]:
    """``ragcast`` embedded: one uvicorn process with its worker threads (and ``env_extra``
    in its environment); yields its settings and a factory of clients holding its key."""
    from ragcast.auth import create_key
    from ragcast.runner.boot import build_context

    data = root / f"embedded-{secrets.token_hex(3)}"
    settings = Settings(data_dir=data)
    ctx = build_context(settings)
    with ctx.db.session() as s:
        key, _ = create_key(s, "bench")
    ctx.db.dispose()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGCAST_")}
    env.update(
        RAGCAST_WORKERS=THREADS,
        RAGCAST_RATE_LIMIT_PROCESS="1000/hour",
        RAGCAST_RATE_LIMIT_READ="10000000/hour",
        RAGCAST_DATA_DIR=str(data),
        HF_HUB_OFFLINE="1",
        **env_extra,
    )
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "ragcast.api.app:create_app",
           "--port", str(port), "--log-level", "warning"]  # fmt: skip
    proc = Proc("embedded", cmd, env, root / "embedded.log")
    proc.start()
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz")

        def client() -> httpx.Client:
            return httpx.Client(
                base_url=f"http://127.0.0.1:{port}{PREFIX}",
                headers={"Authorization": f"Bearer {key}"},
                timeout=120,
            )

        yield settings, client
    finally:
        proc.stop()


@contextmanager
def distributed_cluster(
    root: Path, workers: int = 2
) -> Iterator[tuple[Settings, Callable[[], httpx.Client]]]:
    """An API process and ``workers`` worker processes on PostgreSQL, Redis and Chroma."""
    folder = root / f"cluster-{secrets.token_hex(3)}"
    folder.mkdir()
    cluster = Cluster(folder)
    try:
        base = cluster.env
        cluster.env = lambda: {  # type: ignore[method-assign]
            **base(),
            "RAGCAST_LOCAL_EMBEDDING_MODEL": MODEL,
            "RAGCAST_WORKERS": THREADS,
            "RAGCAST_RATE_LIMIT_PROCESS": "1000/hour",
            "RAGCAST_RATE_LIMIT_READ": "10000000/hour",
        }
        cluster.api()
        for n in range(workers):
            cluster.worker(f"worker{n}")
        yield Settings(**cluster.settings_kwargs()), cluster.client
    finally:
        cluster.close()


def small(root: Path, n: int) -> None:
    """Many small items: ragcast per item against the bare script."""
    lines = texts(n)
    with embedded_server(root, RAGCAST_LOCAL_EMBEDDING_MODEL=MODEL) as (settings, client):
        warm = seed_uploads(settings, texts(4, seed=1), "w")
        docs = seed_uploads(settings, lines, "s")
        with client() as c:
            run_job(c, "warm", warm, 300)  # models loaded before the clock starts
            status = run_job(c, "small", docs, 1800)
        print(f"  ragcast: {status['status']} in {status['seconds']:.2f}s")
        print(f"  check: {check(settings, 'small', n)}")
    bare_s = bare(lines, root)
    ours_ms = 1000 * status["seconds"] / n
    bare_ms = 1000 * bare_s / n
    ratio = ours_ms / bare_ms
    print(f"  bare encode+upsert: {bare_s:.2f}s")
    print(
        f"small items (n={n}): ragcast {ours_ms:.1f} ms/item, bare {bare_ms:.1f} ms/item, "
        f"ratio {ratio:.2f}x (target <= 3x): {'PASS' if ratio <= 3 else 'FAIL'}"
    )


def large(root: Path, n: int, mode: str) -> None:
    """A job of ``n`` items, with status and items pages read while it runs."""
    lines = texts(n, seed=11)
    server = (
        embedded_server(root, RAGCAST_LOCAL_EMBEDDING_MODEL=MODEL)
        if mode == "embedded"
        else distributed_cluster(root)
    )
    with server as (settings, client):
        warm = seed_uploads(settings, texts(4, seed=1), "w")
        docs = seed_uploads(settings, lines, "l")
        with client() as c:
            run_job(c, "warm", warm, 300)
            readers = Readers(client, "large")
            status = run_job(c, "large", docs, 3600, readers)
        print(
            f"  {mode}: {n} items {status['status']} in {status['seconds']:.1f}s "
            f"({1000 * status['seconds'] / n:.1f} ms/item), "
            f"result {status['result']}"
        )
        print(
            f"  status reads while it ran: {len(readers.status_ms)}, "
            f"p50 {pct(readers.status_ms, 0.5):.1f} ms, p99 {pct(readers.status_ms, 0.99):.1f} ms;"
            f" items pages: {len(readers.items_ms)}, p50 {pct(readers.items_ms, 0.5):.1f} ms, "
            f"p99 {pct(readers.items_ms, 0.99):.1f} ms; non-200 answers {readers.errors or 'none'}"
        )
        print(f"  check: {check(settings, 'large', n)}")


def main(argv: list[str] | None = None) -> None:
    """Run the cases and print the figures."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--small", type=int, default=500)
    parser.add_argument("--large", type=int, default=10_000)
    parser.add_argument("--cases", default="small,large")
    parser.add_argument("--modes", default="embedded,distributed")
    args = parser.parse_args(argv)
    cases = args.cases.split(",")
    with tempfile.TemporaryDirectory(prefix="ragcast-scale-") as tmp:
        root = Path(tmp)
        if "small" in cases:
            small(root, args.small)
        if "large" in cases:
            for mode in args.modes.split(","):
                large(root, args.large, mode)


if __name__ == "__main__":
    main(sys.argv[1:])
