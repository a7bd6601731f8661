"""What only Qdrant (named multi-vectors, UUID5 ids, a tenant index) and pgvector (tables,
HNSW, tables of earlier releases) do."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from pgvector.psycopg import register_vector
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


def test_qdrant_tenants_have_their_own_points(tmp_path: Path) -> None:
    assert point_id("doc:1") != point_id("doc:1", "u1") != point_id("doc:1", "u2")
    assert point_id("doc:1", "u1") == point_id("doc:1", "u1")
    store = QdrantStore(path=str(tmp_path / "q"))
    store.ensure_collection("c", 8)
    store.upsert("c", [record(1, 8)], tenant="u1")
    store.upsert("c", [record(1, 8)])
    points = store._client.retrieve("c", [point_id("doc:1", "u1"), point_id("doc:1")])
    payloads = sorted((p.payload or {}).get("tenant", "-") for p in points)
    assert payloads == ["-", "u1"]  # no tenant: no tenant field
    store.close()


def test_qdrant_servers_get_a_tenant_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = QdrantStore(path=str(tmp_path / "q"))
    created: dict[str, Any] = {}

    def create_payload_index(name: str, key: str, field_schema: Any, **_: Any) -> None:
        created[key] = field_schema

    monkeypatch.setattr(store._client, "create_payload_index", create_payload_index)
    monkeypatch.setattr(store, "_local", False)  # as with a server (local mode has none)
    store.ensure_collection("c", 8)
    tenant = created.pop("tenant")
    assert isinstance(tenant, qm.KeywordIndexParams) and tenant.is_tenant is True
    assert created == {
        "content_id": qm.PayloadSchemaType.KEYWORD,
        "chunk_index": qm.PayloadSchemaType.INTEGER,
    }
    monkeypatch.undo()
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


def test_pgvector_tables_of_an_earlier_release_gain_tenants(
    pg_dsn_lazy: Callable[[], str],
) -> None:
    dsn, schema, name = pg_dsn_lazy(), "pgv_legacy", "ragcast-u1-local-8"
    table = f"{schema}.{table_name(name)}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(
            f"CREATE TABLE {table} (id text PRIMARY KEY, content_id text NOT NULL,"
            " chunk_index integer NOT NULL, embedding vector(8) NOT NULL,"
            " text text NOT NULL, metadata jsonb NOT NULL DEFAULT '{}')"
        )
        conn.execute(
            f"CREATE INDEX {table_name(name)}_content ON {table} (content_id, chunk_index)"
        )
        register_vector(conn)
        for i in range(3):
            r = record(i, 8)
            conn.execute(
                f"INSERT INTO {table} VALUES (%s, 'doc', %s, %s, %s, %s)",
                (r.id, i, np.asarray(r.vector), r.text, '{"content_id": "doc"}'),
            )
    store = PgVectorStore(dsn, schema=schema)
    # Reads need no ensure_collection first; the old rows are the ones without a tenant.
    assert store.count(name) == 3 and store.count(name, tenant="u1") == 0
    assert store.query(name, list(record(2, 8).vector), 1)[0].id == "doc:2"
    store.ensure_collection(name, 8)
    store.upsert(name, [record(2, 8)], tenant="u1")  # the same id, another tenant
    assert store.count(name) == 4 and store.count(name, tenant="u1") == 1
    assert store.query(name, list(record(2, 8).vector), 5, tenant="u1")[0].id == "doc:2"
    store.delete_stale(name, "doc", keep=1)
    assert store.count(name) == 2 and store.count(name, tenant="u1") == 1
    with psycopg.connect(dsn) as conn:
        indexes: dict[str, str] = dict(
            conn.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %s", (schema,)
            ).fetchall()
        )
    assert "(tenant, id)" in indexes[f"{table_name(name)}_pkey"]
    assert "(tenant, content_id, chunk_index)" in indexes[f"{table_name(name)}_tenant_content"]
    assert f"{table_name(name)}_content" not in indexes
    store.close()
