"""Benchmark: ragcast's vector stores against each backend's own client, same data, same run.

For each local backend (Chroma on disk, Qdrant in local mode, pgvector on the PostgreSQL
of the ``pgserver`` wheel), ``--n`` chunks (default 50,000) of 384 random dimensions with
ragcast's metadata and a 1,000-character text are written into an empty collection:

- **ragcast**: ``VectorStore.upsert`` (batching, id mapping, metadata cleaning included);
- **bare**: the backend's client called directly with its recommended batching:
  Chroma ``collection.upsert`` in batches of ``client.get_max_batch_size()`` (what
  ``chromadb.utils.batch_utils.create_batches`` does); Qdrant ``upload_points`` with its
  default ``batch_size=64``; pgvector ``COPY … FORMAT BINARY`` (pgvector-python's bulk
  loading recipe) into a table with the same HNSW index.

Sides alternate for ``--rounds`` rounds (fresh collections each time); medians of
throughput are printed with their ratio (target: ragcast ≥ 0.9 × bare).

    .venv/bin/python -m bench vectorstores [--n 50000] [--rounds 3] [--backends chroma,qdrant]
        [--workdir /dev/shm]

Local Qdrant commits every point to SQLite and pgvector maintains its HNSW graph row by
row, so on a shared disk the figures swing with fsync latency; ``--workdir`` on a tmpfs
measures the clients' own work.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ragcast.providers.vectorstores.base import VectorRecord, VectorStore

DIMS = 384
BACKENDS = ("chroma", "qdrant", "pgvector")


def dataset(n: int) -> tuple[np.ndarray, list[str], list[str], list[dict[str, Any]]]:
    """``n`` unit vectors with ids, texts and ragcast's metadata (10 chunks per content)."""
    rng = np.random.default_rng(42)
    vectors = rng.standard_normal((n, DIMS)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    words = "the ferry leaves the harbour at nine and returns at six every day ".split()
    texts = [" ".join(words[(i + k) % len(words)] for k in range(160))[:1000] for i in range(n)]
    ids, metas = [], []
    for i in range(n):
        content, index = f"yt-{i // 10:06d}", i % 10
        ids.append(f"{content}:{index}")
        metas.append(
            {
                "job_id": "bench",
                "content_id": content,
                "chunk_index": index,
                "start_s": index * 30.0,
                "end_s": index * 30.0 + 29.5,
                "token_count": 240,
                "source_type": "url",
                "source": f"Episode {i // 10}",
                "title": f"Episode {i // 10}",
                "url": f"https://www.youtube.com/watch?v={i // 10:011d}",
                "platform": "youtube",
            }
        )
    return vectors, ids, texts, metas


class Side:
    """One way of writing the first ``n`` chunks into a fresh collection; returns seconds."""

    def __init__(self, name: str, run: Callable[[str, int], float]) -> None:
        self.name, self.run = name, run


#: what to close before a backend's work dir is removed
CLOSERS: list[Callable[[], object]] = []


def ragcast_side(store: VectorStore, data: tuple[Any, ...]) -> Side:
    vectors, ids, texts, metas = data
    records = [
        VectorRecord(id=i, vector=v, text=t, metadata=m)
        for i, v, t, m in zip(ids, vectors, texts, metas, strict=True)
    ]

    def run(collection: str, n: int) -> float:
        store.ensure_collection(collection, DIMS)
        t0 = time.perf_counter()
        store.upsert(collection, records[:n])
        elapsed = time.perf_counter() - t0
        assert store.count(collection) == n
        return elapsed

    return Side("ragcast", run)


def chroma_sides(workdir: Path, data: tuple[Any, ...]) -> tuple[Side, Side]:
    import chromadb
    from chromadb.config import Settings

    from ragcast.providers.vectorstores.chroma import ChromaStore

    store = ChromaStore(path=workdir / "ragcast")
    client = chromadb.PersistentClient(
        path=str(workdir / "bare"), settings=Settings(anonymized_telemetry=False)
    )
    vectors, ids, texts, metas = data
    batch = client.get_max_batch_size()

    def bare(collection: str, n: int) -> float:
        col = client.create_collection(
            collection, metadata={"hnsw:space": "cosine"}, embedding_function=None
        )
        t0 = time.perf_counter()
        for s in range(0, n, batch):
            e = min(s + batch, n)
            col.upsert(
                ids=ids[s:e], embeddings=vectors[s:e], documents=texts[s:e], metadatas=metas[s:e]
            )
        elapsed = time.perf_counter() - t0
        assert col.count() == n
        return elapsed

    return ragcast_side(store, data), Side(f"bare (batch {batch})", bare)


def qdrant_sides(workdir: Path, data: tuple[Any, ...]) -> tuple[Side, Side]:
    from qdrant_client import QdrantClient
    from qdrant_client import models as qm

    from ragcast.providers.vectorstores.qdrant import QdrantStore

    store = QdrantStore(path=str(workdir / "ragcast-qdrant"))
    client = QdrantClient(path=str(workdir / "bare-qdrant"))
    CLOSERS.extend([client.close, store.close])
    vectors, ids, texts, metas = data

    def bare(collection: str, n: int) -> float:
        client.create_collection(
            collection, vectors_config=qm.VectorParams(size=DIMS, distance=qm.Distance.COSINE)
        )
        t0 = time.perf_counter()
        client.upload_points(
            collection,
            points=[
                qm.PointStruct(
                    id=str(uuid.uuid5(uuid.NAMESPACE_URL, i)),
                    vector=v.tolist(),
                    payload={**m, "id": i, "text": t},
                )
                for i, v, t, m in zip(ids[:n], vectors[:n], texts[:n], metas[:n], strict=True)
            ],
            batch_size=64,
        )
        elapsed = time.perf_counter() - t0
        assert client.count(collection).count == n
        return elapsed

    return ragcast_side(store, data), Side("bare (upload_points, batch 64)", bare)


def pgvector_sides(workdir: Path, data: tuple[Any, ...]) -> tuple[Side, Side]:
    import psycopg
    from pgvector.psycopg import register_vector
    from psycopg.types.json import Jsonb

    from ragcast.providers.vectorstores.pgvector import PgVectorStore

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        import pgserver

    server = pgserver.get_server(workdir / "pg", cleanup_mode="stop")
    dsn = server.get_uri()
    store = PgVectorStore(dsn, schema="bench")
    CLOSERS.extend([server.cleanup, store.close])
    vectors, ids, texts, metas = data

    def bare(collection: str, n: int) -> float:
        table = collection.replace("-", "_")
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            register_vector(conn)
            conn.execute(
                f"CREATE TABLE {table} (id text PRIMARY KEY, content_id text, chunk_index int,"
                f" embedding vector({DIMS}), text text, metadata jsonb)"
            )
            conn.execute(f"CREATE INDEX ON {table} USING hnsw (embedding vector_cosine_ops)")
            t0 = time.perf_counter()
            with conn.transaction(), conn.cursor() as cur:
                copy_sql = (
                    f"COPY {table} (id, content_id, chunk_index, embedding, text, metadata)"
                    " FROM STDIN WITH (FORMAT BINARY)"
                )
                with cur.copy(copy_sql) as copy:
                    copy.set_types(["text", "text", "int4", "vector", "text", "jsonb"])
                    for i, v, t, m in zip(ids[:n], vectors[:n], texts[:n], metas[:n], strict=True):
                        copy.write_row((i, m["content_id"], m["chunk_index"], v, t, Jsonb(m)))
            elapsed = time.perf_counter() - t0
            row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
            assert row is not None and row[0] == n
        return elapsed

    return ragcast_side(store, data), Side("bare (COPY binary)", bare)


SIDES = {"chroma": chroma_sides, "qdrant": qdrant_sides, "pgvector": pgvector_sides}


def main(argv: list[str] | None = None) -> None:
    """Run the rounds for each backend and print throughputs and ratios."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=50_000, help="chunks per run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument(
        "--workdir", default=None, help="where the stores write (default: the temp dir)"
    )
    args = parser.parse_args(argv)
    data = dataset(args.n)
    summary = []
    for backend in args.backends.split(","):
        workdir = Path(tempfile.mkdtemp(prefix=f"ragcast-bench-{backend}-", dir=args.workdir))
        try:
            rc, bare = SIDES[backend](workdir, data)
            times: dict[str, list[float]] = {rc.name: [], bare.name: []}
            for side in (rc, bare):  # warm-up: first writes pay one-off costs on both sides
                side.run(f"warm-{side.name[:4]}", min(args.n, 10_000))
            for r in range(args.rounds):
                # Alternate who goes first so neither side always meets a warm cache.
                for side in (rc, bare) if r % 2 == 0 else (bare, rc):
                    times[side.name].append(side.run(f"bench-{side.name[:4]}-{r}", args.n))
                    rate = args.n / times[side.name][-1]
                    print(f"{backend} round {r + 1}: {side.name} {rate:,.0f}/s", flush=True)
        finally:
            while CLOSERS:
                CLOSERS.pop()()
            shutil.rmtree(workdir, ignore_errors=True)
        rate_rc = args.n / statistics.median(times[rc.name])
        rate_bare = args.n / statistics.median(times[bare.name])
        summary.append((backend, bare.name, rate_rc, rate_bare))
    print(f"\n{args.n:,} chunks of {DIMS} dimensions, median of {args.rounds} rounds")
    for backend, bare_name, rate_rc, rate_bare in summary:
        print(
            f"{backend:9s} ragcast {rate_rc:9,.0f}/s  {bare_name} {rate_bare:9,.0f}/s  "
            f"ratio {rate_rc / rate_bare:.3f} (target >= 0.9)"
        )


if __name__ == "__main__":
    main()
