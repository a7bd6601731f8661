"""pgvector's per-tenant row counts and the search plan they choose: exact for a small
tenant or a few contents, HNSW for a big one, exact again when HNSW comes back short;
tables of earlier releases gain the counts in place."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import numpy as np
import psycopg
import pytest
from pgvector.psycopg import register_vector

from ragcast.providers.vectorstores.base import VectorRecord
from ragcast.providers.vectorstores.pgvector import PgVectorStore, table_name
from ragcast.providers.vectorstores.pgvector import store as pgstore

DIMS = 8


def unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(DIMS).astype(np.float32)
    return v / np.linalg.norm(v)


def records(content_id: str, n: int, *, seed: int = 0, **meta: Any) -> list[VectorRecord]:
    return [
        VectorRecord(
            id=f"{content_id}:{i}",
            vector=unit(seed * 1000 + i),
            text=f"chunk {i} of {content_id}",
            metadata={"content_id": content_id, "chunk_index": i, **meta},
        )
        for i in range(n)
    ]


def counts(dsn: str, schema: str, name: str) -> dict[str, int]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            f'SELECT tenant, row_count FROM {schema}."{table_name(name)}$tenants"'
        ).fetchall()
    return {t: int(n) for t, n in rows if n}


@pytest.fixture
def setup(pg_dsn_lazy: Callable[[], str]) -> tuple[str, str, PgVectorStore]:
    dsn, schema = pg_dsn_lazy(), f"plans_{uuid.uuid4().hex[:8]}"
    return dsn, schema, PgVectorStore(dsn, schema=schema)


def test_triggers_keep_each_tenants_row_count(setup: tuple[str, str, PgVectorStore]) -> None:
    dsn, schema, store = setup
    name = "ragcast-local-8"
    store.ensure_collection(name, DIMS)
    store.upsert(name, records("a", 5), tenant="u1")
    store.upsert(name, records("b", 3), tenant="u2")
    store.upsert(name, records("a", 5, seed=4), tenant="u1")  # overwrites: no new rows
    store.upsert(name, records("c", 2))
    assert counts(dsn, schema, name) == {"u1": 5, "u2": 3, "": 2}
    store.delete_stale(name, "a", keep=2, tenant="u1")
    store.update_metadata(name, {"b:0": {"speaker": "x"}}, tenant="u2")
    assert counts(dsn, schema, name) == {"u1": 2, "u2": 3, "": 2}
    assert store.count(name, tenant="u1") == 2 and store.count(name) == 7
    store.drop_collection(name)
    with psycopg.connect(dsn) as conn:
        left = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = %s", (schema,)
        ).fetchone()
    assert left == (0,)
    store.close()


def test_a_big_tenant_is_searched_by_hnsw_and_a_small_one_exactly(
    setup: tuple[str, str, PgVectorStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, _, store = setup
    monkeypatch.setattr(pgstore, "EXACT_ROWS", 50)
    tuned: list[int] = []
    tune = store._tune
    monkeypatch.setattr(store, "_tune", lambda conn, ef: (tuned.append(ef), tune(conn, ef)))
    name = "ragcast-local-8"
    store.ensure_collection(name, DIMS)
    store.upsert(name, records("big", 300) + records("rare", 3, seed=9, lang="xx"), tenant="big")
    for t in range(5):
        store.upsert(name, records("small", 4, seed=10 + t), tenant=f"s{t}")
    q = unit(7)
    hits = store.query(name, q.tolist(), 10, tenant="big")
    assert tuned == [pgstore.EF_SEARCH]
    exact = sorted(range(300), key=lambda i: -float(unit(i) @ q))[:10]
    assert len({h.id for h in hits} & {f"big:{i}" for i in exact}) >= 9
    # A filter few rows pass: HNSW comes back short, the exact search finds them all.
    rare = store.query(name, q.tolist(), 10, {"lang": "xx"}, tenant="big")
    assert sorted(h.id for h in rare) == ["rare:0", "rare:1", "rare:2"] and len(tuned) == 2
    # A few contents, and a small tenant, go to the btree straight away.
    few = store.query(name, q.tolist(), 10, {"content_id": {"$in": ["rare"]}}, tenant="big")
    assert len(few) == 3
    small = store.query(name, q.tolist(), 10, tenant="s3")
    assert [h.id for h in small] == [
        f"small:{i}" for i in sorted(range(4), key=lambda i: -float(unit(13000 + i) @ q))
    ]
    assert len(tuned) == 2
    assert store.query(name, q.tolist(), 10, tenant="nobody") == []
    store.close()


def test_a_small_share_widens_the_scan_or_goes_exact(
    setup: tuple[str, str, PgVectorStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = setup[2]
    monkeypatch.setattr(pgstore, "EXACT_ROWS", 50)
    store._version = (0, 6)
    assert store._ef_search(30, 100_000, 110_000) == pgstore.EF_SEARCH
    assert store._ef_search(30, 10_000, 110_000) == 660  # 2 x 30 x 11
    assert store._ef_search(30, 2_000, 110_000) is None  # beyond ef_search's 1,000
    assert store._ef_search(30, 40, 110_000) is None  # small: exact
    store._version = (0, 8)  # iterative scans go on past ef_search
    assert store._ef_search(30, 2_000, 110_000) == pgstore.EF_SEARCH
    assert store._ef_search(30, 100, 10_000_000) is None


def test_tables_of_the_previous_release_gain_counts(setup: tuple[str, str, PgVectorStore]) -> None:
    dsn, schema, _ = setup
    name = "ragcast-local-8"
    table = f'{schema}."{table_name(name)}"'
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(
            f"CREATE TABLE {table} (tenant text NOT NULL DEFAULT '', id text NOT NULL,"
            " content_id text NOT NULL, chunk_index integer NOT NULL,"
            " embedding vector(8) NOT NULL, text text NOT NULL,"
            " metadata jsonb NOT NULL DEFAULT '{}', PRIMARY KEY (tenant, id))"
        )
        conn.execute(f"CREATE INDEX ON {table} USING hnsw (embedding vector_cosine_ops)")
        register_vector(conn)
        for tenant, n in (("u1", 3), ("u2", 2)):
            for r in records("doc", n):
                conn.execute(
                    f"INSERT INTO {table} VALUES (%s, %s, 'doc', %s, %s, %s, '{{}}')",
                    (tenant, r.id, r.metadata["chunk_index"], np.asarray(r.vector), r.text),
                )
    store = PgVectorStore(dsn, schema=schema)
    assert store.query(name, unit(1).tolist(), 5, tenant="u1")[0].id == "doc:1"
    assert counts(dsn, schema, name) == {"u1": 3, "u2": 2}
    store.upsert(name, records("more", 4), tenant="u2")
    assert counts(dsn, schema, name) == {"u1": 3, "u2": 6}
    with psycopg.connect(dsn) as conn:
        options = conn.execute(
            "SELECT reloptions FROM pg_class WHERE oid = %s::regclass", (table,)
        ).fetchone()
    assert options is not None and "toast_tuple_target=8160" in options[0]
    store.close()
    # Another store (another process) finds the table ready.
    again = PgVectorStore(dsn, schema=schema)
    assert again.count(name, tenant="u2") == 6
    again.close()
