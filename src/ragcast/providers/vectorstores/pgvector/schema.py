"""The tables of the pgvector backend: their names, their DDL, and the migration of the
tables an earlier ragcast made (``id`` alone the primary key, no ``tenant``).

A collection's table holds

    tenant text NOT NULL DEFAULT '', id text, content_id text, chunk_index integer,
    embedding vector(d), text text, metadata jsonb, PRIMARY KEY (tenant, id)

with a btree index on ``(tenant, content_id, chunk_index)`` and an HNSW index with
``vector_cosine_ops``, or ``halfvec_cosine_ops`` on the ``halfvec`` cast for more than
:data:`HNSW_MAX_DIMS` dimensions (none where the extension has no ``halfvec``). The
dimension lives in the column's type modifier, which :func:`existing_dims` reads.
"""

from __future__ import annotations

import hashlib
import logging
import re
from typing import Any

import psycopg
from psycopg import sql

# The backend's one logger, named as it was when the backend was a single module.
log = logging.getLogger("ragcast.providers.vectorstores.pgvector")

HNSW_MAX_DIMS = 2000  # pgvector's limit for an HNSW index on ``vector``


def table_name(collection: str) -> str:
    """The table of a collection: the name itself when it is a plain SQL identifier,
    else a sanitised form plus 8 hex digits of its SHA-1 (so distinct names never meet)."""
    if re.fullmatch(r"[a-z_][a-z0-9_]{0,53}", collection):
        return collection
    base = re.sub(r"[^a-z0-9_]", "_", collection.lower())[:45]
    return f"{base}_{hashlib.sha1(collection.encode()).hexdigest()[:8]}"


def qualified_table(schema: str, name: str) -> sql.Composed:
    """The table of collection ``name`` in ``schema``, both quoted."""
    return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table_name(name)))


def existing_dims(conn: psycopg.Connection[Any], table: sql.Composed) -> int | None:
    """The dimension of ``table``'s ``embedding`` column, None when there is no table."""
    row = conn.execute(
        "SELECT atttypmod FROM pg_attribute WHERE attrelid = to_regclass(%s)"
        " AND attname = 'embedding' AND NOT attisdropped",
        (table.as_string(conn),),
    ).fetchone()
    return None if row is None else int(row[0])


def has_tenant_key(conn: psycopg.Connection[Any], table: sql.Composed) -> bool:
    """Whether the table's primary key is ``(tenant, id)``."""
    row = conn.execute(
        "SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid"
        " AND a.attnum = i.indkey[0] WHERE i.indrelid = to_regclass(%s)"
        " AND i.indisprimary AND a.attname = 'tenant'",
        (table.as_string(conn),),
    ).fetchone()
    return row is not None


def lock(conn: psycopg.Connection[Any], name: str) -> None:
    """Serialise DDL on ``name`` across processes: ``… IF NOT EXISTS`` still races."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (name,))


def ann_index(dimensions: int, *, halfvec: bool) -> tuple[sql.Composable, str] | None:
    """The indexed expression and operator class, or None when HNSW cannot index it."""
    if dimensions <= HNSW_MAX_DIMS:
        return sql.SQL("embedding"), "vector_cosine_ops"
    if halfvec:
        return sql.SQL("embedding::halfvec({})").format(
            sql.Literal(dimensions)
        ), "halfvec_cosine_ops"
    return None


def create_table(
    conn: psycopg.Connection[Any], schema: str, name: str, dimensions: int, *, halfvec: bool
) -> None:
    """The table of collection ``name`` and its indexes (no HNSW where it cannot index)."""
    table, base = qualified_table(schema, name), table_name(name)
    conn.execute(
        sql.SQL(
            "CREATE TABLE {} (tenant text NOT NULL DEFAULT '', id text NOT NULL,"
            " content_id text NOT NULL, chunk_index integer NOT NULL,"
            " embedding vector({}) NOT NULL, text text NOT NULL,"
            " metadata jsonb NOT NULL DEFAULT '{{}}', PRIMARY KEY (tenant, id))"
        ).format(table, sql.Literal(dimensions))
    )
    content_index(conn, schema, name)
    ann = ann_index(dimensions, halfvec=halfvec)
    if ann is None:
        log.warning("pgvector %s: %d dimensions, no HNSW index (exact search)", name, dimensions)
        return
    conn.execute(
        sql.SQL("CREATE INDEX {} ON {} USING hnsw (({}) {})").format(
            sql.Identifier(f"{base}_hnsw"),
            table,
            ann[0],
            sql.SQL(ann[1]),
        )
    )


def content_index(conn: psycopg.Connection[Any], schema: str, name: str) -> None:
    """The btree that ``delete_stale`` and filtered searches of a tenant use."""
    conn.execute(
        sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} (tenant, content_id, chunk_index)").format(
            sql.Identifier(f"{table_name(name)}_tenant_content"), qualified_table(schema, name)
        )
    )


def add_tenants(conn: psycopg.Connection[Any], schema: str, name: str) -> None:
    """Bring a table of an earlier ragcast to this layout; its rows keep tenant ''."""
    table, base = qualified_table(schema, name), table_name(name)
    log.info("pgvector %s: adding the tenant column and keys", name)
    conn.execute(
        sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS tenant text NOT NULL DEFAULT ''").format(
            table
        )
    )
    row = conn.execute(
        "SELECT conname FROM pg_constraint WHERE conrelid = to_regclass(%s) AND contype = 'p'",
        (table.as_string(conn),),
    ).fetchone()
    if row is not None:
        conn.execute(
            sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(table, sql.Identifier(row[0]))
        )
    conn.execute(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY (tenant, id)").format(table))
    content_index(conn, schema, name)
    conn.execute(
        sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(schema, f"{base}_content"))
    )
