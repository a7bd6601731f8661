"""What only Qdrant (named multi-vectors, UUID5 ids) and pgvector (tables, HNSW) do."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import psycopg
from qdrant_client import models as qm

from ragcast.providers.vectorstores.base import VectorRecord
from ragcast.providers.vectorstores.pgvector import PgVectorStore, table_name
from ragcast.providers.vectorstores.qdrant import DENSE, MULTI, QdrantStore, point_id


def record(i: int, dims: int, multi: int = 0) -> VectorRecord:
    rng = np.random.default_rng(i)
    tokens = rng.standard_normal((multi, 4)).astype(np.float32) if multi else None
    return VectorRecord(
        id=f"doc:{i}",
        vector=rng.standard_normal(dims).astype(np.float32),
        text=f"chunk {i}",
        metadata={"content_id": "doc", "chunk_index": i},
        multi_vector=tokens,
    )


def test_qdrant_stores_multi_vectors_beside_the_dense_one(tmp_path: Path) -> None:
    store = QdrantStore(path=str(tmp_path / "q"))
    name = "ragcast-u1-jina-v4-8"
    store.ensure_collection(name, 8)
    store.upsert(name, [record(0, 8)])  # a single-vector job first
    store.upsert(name, [record(i, 8, multi=5 + i) for i in range(1, 4)])
    client = store._client
    vectors = client.get_collection(name).config.params.vectors
    assert isinstance(vectors, dict) and vectors[DENSE].size == 8
    multi = vectors[MULTI].multivector_config
    assert vectors[MULTI].size == 4 and multi is not None
    assert multi.comparator == qm.MultiVectorComparator.MAX_SIM
    late = client.query_points(name, query=record(2, 8, 7).multi_vector.tolist(), using=MULTI)  # type: ignore[union-attr]
    assert late.points[0].payload is not None and late.points[0].payload["id"] == "doc:2"
    assert store.count(name) == 4
    assert store.query(name, list(record(3, 8).vector), 1)[0].id == "doc:3"  # dense search
    store.close()


def test_qdrant_point_ids_are_deterministic_uuids(tmp_path: Path) -> None:
    assert point_id("doc:1") == point_id("doc:1") != point_id("doc:2")
    store = QdrantStore(path=str(tmp_path / "q"))
    store.ensure_collection("c", 8)
    store.upsert("c", [record(1, 8)])
    point = store._client.retrieve("c", [point_id("doc:1")], with_payload=True)[0]
    assert point.payload is not None and point.payload["id"] == "doc:1"
    store.close()


def test_table_names_are_deterministic_and_distinct() -> None:
    assert table_name("plain_name") == "plain_name"
    mapped = table_name("ragcast-u1-local-384")
    assert mapped == table_name("ragcast-u1-local-384")
    assert mapped.startswith("ragcast_u1_local_384_") and mapped != table_name(
        "ragcast_u1_local_384"
    )
    assert len(table_name("x" * 300)) <= 54


def test_pgvector_tables_have_hnsw_and_wide_vectors_still_work(
    pg_dsn_lazy: Callable[[], str],
) -> None:
    dsn = pg_dsn_lazy()
    store = PgVectorStore(dsn, schema="pgv_specific")
    store.ensure_collection("ragcast-u1-local-8", 8)
    store.ensure_collection("ragcast-u1-jina-v4-2048", 2048)
    store.upsert("ragcast-u1-jina-v4-2048", [record(i, 2048) for i in range(5)])
    hits = store.query("ragcast-u1-jina-v4-2048", list(record(2, 2048).vector), 2)
    assert hits[0].id == "doc:2" and abs(hits[0].score - 1.0) < 1e-4
    with psycopg.connect(dsn) as conn:
        indexes = conn.execute(
            "SELECT tablename, indexdef FROM pg_indexes WHERE schemaname = 'pgv_specific'"
        ).fetchall()
    hnsw = [t for t, d in indexes if "USING hnsw" in d and "vector_cosine_ops" in d]
    assert hnsw == [table_name("ragcast-u1-local-8")]
    store.close()
