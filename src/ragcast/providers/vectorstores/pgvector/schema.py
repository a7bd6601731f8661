"""The tables of the pgvector backend: their names, their DDL, and the migration of the
tables an earlier ragcast made (``id`` alone the primary key, no ``tenant``; no row
counts).

A collection's table holds

    tenant text NOT NULL DEFAULT '', id text, content_id text, chunk_index integer,
    embedding vector(d), text text, metadata jsonb, PRIMARY KEY (tenant, id)

with a btree index on ``(tenant, content_id, chunk_index)`` and an HNSW index with
``vector_cosine_ops`` (``ef_construction`` :data:`HNSW_EF_CONSTRUCTION`), or
``halfvec_cosine_ops`` on the ``halfvec`` cast for more than :data:`HNSW_MAX_DIMS`
dimensions (none where the extension has no ``halfvec``). The
dimension lives in the column's type modifier, which :func:`existing_dims` reads.
``toast_tuple_target`` is :data:`TOAST_TARGET`, so that a row of up to 8 kB (a vector of
up to about 1,900 dimensions and its text) stays in the heap: an exact search reads
vectors without a TOAST lookup each.

Beside it, ``{table}$tenants (tenant text PRIMARY KEY, row_count bigint)`` holds each
tenant's number of rows, kept by two statement-level triggers (``AFTER INSERT`` and
``AFTER DELETE``, over their transition tables) calling :data:`COUNT_FUNCTION`; the
search reads it to choose between an exact scan and HNSW (:mod:`.store`). The ``$``
keeps the name apart from any collection's table (:func:`table_name` never makes one).
Rows never change tenant (no statement of the store updates the column). A table
without counts gets them in :func:`add_counts`, filled from its rows under a lock that
holds writes back meanwhile.
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
#: HNSW's links per node and build-time candidate list (pgvector's defaults: 16 and 64).
#: 128 costs about twice the insert time of 64 and lifts recall@10 at ef_search 200 from
#: 0.95 to 0.98 for a tenant of 100,000 rows (``python -m bench tenants``).
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 128
TOAST_TARGET = 8160  # PostgreSQL's largest toast_tuple_target: rows stay whole up to it
#: the trigger function, one per schema, that keeps the tables' ``$tenants`` counts
COUNT_FUNCTION = "ragcast_count_tenants"


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


def counts_name(name: str) -> str:
    """The name of the per-tenant row counts of collection ``name``'s table."""
    return f"{table_name(name)}$tenants"


def counts_table(schema: str, name: str) -> sql.Composed:
    """The per-tenant row counts of collection ``name``, in ``schema``, quoted."""
    return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(counts_name(name)))


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


def has_counts(conn: psycopg.Connection[Any], schema: str, name: str) -> bool:
    """Whether collection ``name``'s table has its per-tenant row counts."""
    row = conn.execute(
        "SELECT to_regclass(%s) IS NOT NULL", (counts_table(schema, name).as_string(conn),)
    ).fetchone()
    return bool(row and row[0])


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
            " WITH (toast_tuple_target = {})"
        ).format(table, sql.Literal(dimensions), sql.Literal(TOAST_TARGET))
    )
    content_index(conn, schema, name)
    add_counts(conn, schema, name)
    ann = ann_index(dimensions, halfvec=halfvec)
    if ann is None:
        log.warning("pgvector %s: %d dimensions, no HNSW index (exact search)", name, dimensions)
        return
    conn.execute(
        sql.SQL(
            "CREATE INDEX {} ON {} USING hnsw (({}) {}) WITH (m = {}, ef_construction = {})"
        ).format(
            sql.Identifier(f"{base}_hnsw"),
            table,
            ann[0],
            sql.SQL(ann[1]),
            sql.Literal(HNSW_M),
            sql.Literal(HNSW_EF_CONSTRUCTION),
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


def add_counts(conn: psycopg.Connection[Any], schema: str, name: str) -> None:
    """Give collection ``name``'s table its per-tenant row counts: the table, the
    triggers that keep it, and the counts of the rows already there.

    ``SHARE ROW EXCLUSIVE`` holds other writers back until the transaction commits (reads
    go on), so no row is counted twice or missed. Rows written from now on stay in the
    heap whole (:data:`TOAST_TARGET`); older ones stay as they are until rewritten.
    """
    table, counts = qualified_table(schema, name), counts_table(schema, name)
    log.info("pgvector %s: adding per-tenant row counts", name)
    conn.execute(sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(table))
    count_function(conn, schema)
    conn.execute(
        sql.SQL(
            "CREATE TABLE {} (tenant text PRIMARY KEY, row_count bigint NOT NULL DEFAULT 0)"
        ).format(counts)
    )
    function = sql.Identifier(schema, COUNT_FUNCTION)
    for event, ref in (
        ("INSERT", "NEW TABLE AS ragcast_rows"),
        ("DELETE", "OLD TABLE AS ragcast_rows"),
    ):
        conn.execute(
            sql.SQL(
                "CREATE TRIGGER {} AFTER {} ON {} REFERENCING {} FOR EACH STATEMENT"
                " EXECUTE FUNCTION {}({})"
            ).format(
                sql.Identifier(f"ragcast_count_{event.lower()}"),
                sql.SQL(event),
                table,
                sql.SQL(ref),
                function,
                sql.Literal(counts_name(name)),
            )
        )
    conn.execute(
        sql.SQL(
            "INSERT INTO {} (tenant, row_count) SELECT tenant, count(*) FROM {} GROUP BY tenant"
        ).format(counts, table)
    )
    conn.execute(
        sql.SQL("ALTER TABLE {} SET (toast_tuple_target = {})").format(
            table, sql.Literal(TOAST_TARGET)
        )
    )


def count_function(conn: psycopg.Connection[Any], schema: str) -> None:
    """The trigger function of :func:`add_counts` in ``schema`` (made once): it adds the
    inserted rows to their tenants' counts, or takes the deleted ones away; its argument
    names the counts table, beside the table that fired it."""
    lock(conn, f"{schema}.{COUNT_FUNCTION}")
    exists = conn.execute(
        "SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
        " WHERE n.nspname = %s AND p.proname = %s",
        (schema, COUNT_FUNCTION),
    ).fetchone()
    if exists:
        return
    conn.execute(
        sql.SQL(
            """CREATE FUNCTION {}() RETURNS trigger LANGUAGE plpgsql AS $body$
BEGIN
  IF TG_OP = 'INSERT' THEN
    EXECUTE format('INSERT INTO %I.%I AS c (tenant, row_count)'
      ' SELECT tenant, count(*) FROM ragcast_rows GROUP BY tenant'
      ' ON CONFLICT (tenant) DO UPDATE SET row_count = c.row_count + EXCLUDED.row_count',
      TG_TABLE_SCHEMA, TG_ARGV[0]);
  ELSE
    EXECUTE format('UPDATE %I.%I AS c SET row_count = c.row_count - d.n'
      ' FROM (SELECT tenant, count(*) AS n FROM ragcast_rows GROUP BY tenant) AS d'
      ' WHERE c.tenant = d.tenant', TG_TABLE_SCHEMA, TG_ARGV[0]);
  END IF;
  RETURN NULL;
END
$body$"""
        ).format(sql.Identifier(schema, COUNT_FUNCTION))
    )
