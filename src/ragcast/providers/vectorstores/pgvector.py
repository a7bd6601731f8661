"""pgvector: PostgreSQL with the ``vector`` extension, one table per collection.

Each ragcast collection is a table in ``RAGCAST_PGVECTOR_SCHEMA`` (default ``public``)
named by :func:`table_name` (ragcast names carry ``-``, which SQL identifiers do not):

    tenant text NOT NULL DEFAULT '', id text, content_id text, chunk_index integer,
    embedding vector(d), text text, metadata jsonb, PRIMARY KEY (tenant, id)

with a btree index on ``(tenant, content_id, chunk_index)`` and an HNSW index with
``vector_cosine_ops``. Tenants share the table: every call for a tenant has
``WHERE tenant = …``, and records written without a tenant have ``tenant = ''``.
Tables made by an earlier ragcast (``id`` alone the primary key, no ``tenant``) get the
column and the new keys in :meth:`PgVectorStore.ensure_collection`; their rows are the
ones without a tenant.

:meth:`PgVectorStore.update_metadata` merges with jsonb ``||`` in one ``UPDATE … FROM
unnest(…)``; a merged ``content_id`` or ``chunk_index`` goes to its column too, which
filters on those keys read.

The dimension lives in the column's type modifier, which is what
:meth:`PgVectorStore.ensure_collection` checks. HNSW indexes ``vector`` columns of at
most 2,000 dimensions; wider collections are indexed as ``halfvec`` where the extension
has it (pgvector ≥ 0.7) and searched exactly otherwise. A filter applies after the
HNSW scan: with pgvector ≥ 0.8 the scan goes on until enough rows pass it
(``hnsw.iterative_scan``), and a search that still comes back short is repeated exactly.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from ragcast.errors import ConfigurationError, TransientError, ValidationError
from ragcast.providers.vectorstores.base import (
    Condition,
    VectorHit,
    VectorRecord,
    VectorStore,
    check_tenant,
    conditions,
    matches_nothing,
    metadata_patch,
)

try:
    import psycopg
    from pgvector.psycopg import register_vector
    from psycopg import sql
    from psycopg.types.json import Jsonb
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "the pgvector backend needs the 'pgvector' extra: pip install ragcast[pgvector]"
    ) from exc

if TYPE_CHECKING:
    from ragcast.settings import Settings

log = logging.getLogger(__name__)

HNSW_MAX_DIMS = 2000  # pgvector's limit for an HNSW index on ``vector``
#: before pgvector 0.8, a filtered search first reads this many times top_k by HNSW
POST_FILTER_FACTOR = 4
COLUMNS = ("content_id", "chunk_index")  # filters on these use columns, others the jsonb


def table_name(collection: str) -> str:
    """The table of a collection: the name itself when it is a plain SQL identifier,
    else a sanitised form plus 8 hex digits of its SHA-1 (so distinct names never meet)."""
    if re.fullmatch(r"[a-z_][a-z0-9_]{0,53}", collection):
        return collection
    base = re.sub(r"[^a-z0-9_]", "_", collection.lower())[:45]
    return f"{base}_{hashlib.sha1(collection.encode()).hexdigest()[:8]}"


class PgVectorStore(VectorStore):
    """Tables with a ``vector`` column in PostgreSQL; cosine distance ``<=>``."""

    id = "pgvector"
    max_batch = 1000

    def __init__(self, dsn: str, *, schema: str = "public", pool_size: int = 4) -> None:
        self.dsn = dsn
        self.schema = schema
        self._idle: queue.LifoQueue[psycopg.Connection[Any]] = queue.LifoQueue(pool_size)
        self._dims: dict[str, int] = {}
        self._tenanted: set[str] = set()  # tables known to have the tenant column and keys
        self._version: tuple[int, ...] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> PgVectorStore:
        """A store on ``RAGCAST_PGVECTOR_DSN`` in ``RAGCAST_PGVECTOR_SCHEMA``."""
        if not settings.pgvector_dsn:
            raise ConfigurationError("pgvector needs RAGCAST_PGVECTOR_DSN")
        return cls(settings.pgvector_dsn, schema=settings.pgvector_schema)

    # -- connections ------------------------------------------------------------------
    @contextmanager
    def _conn(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection in a transaction, committed on success."""
        try:
            conn = self._idle.get_nowait()
        except queue.Empty:
            conn = self._connect()
        try:
            with conn.transaction():
                yield conn
        except psycopg.OperationalError as exc:
            conn.close()
            raise TransientError(f"PostgreSQL is unavailable: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        try:
            self._idle.put_nowait(conn)
        except queue.Full:
            conn.close()

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            conn = psycopg.connect(self.dsn, autocommit=True)
        except psycopg.OperationalError as exc:
            raise TransientError(f"PostgreSQL is unavailable: {exc}") from exc
        if self._version is None:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            conn.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema))
            )
            row = conn.execute(
                "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
            ).fetchone()
            self._version = tuple(int(p) for p in re.findall(r"\d+", row[0] if row else "0")[:2])
        register_vector(conn)
        return conn

    @property
    def _halfvec(self) -> bool:
        """Whether the extension has ``halfvec`` (pgvector ≥ 0.7)."""
        return (self._version or (0,)) >= (0, 7)

    @property
    def _iterative(self) -> bool:
        """Whether HNSW scans can go on past ``ef_search`` rows (pgvector ≥ 0.8)."""
        return (self._version or (0,)) >= (0, 8)

    def close(self) -> None:
        """Close the idle connections."""
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return

    def _table(self, name: str) -> sql.Composed:
        return sql.SQL("{}.{}").format(
            sql.Identifier(self.schema), sql.Identifier(table_name(name))
        )

    def _existing_dims(self, conn: psycopg.Connection[Any], name: str) -> int | None:
        row = conn.execute(
            "SELECT atttypmod FROM pg_attribute WHERE attrelid = to_regclass(%s)"
            " AND attname = 'embedding' AND NOT attisdropped",
            (self._table(name).as_string(conn),),
        ).fetchone()
        return None if row is None else int(row[0])

    def _has_tenant_key(self, conn: psycopg.Connection[Any], name: str) -> bool:
        """Whether the table's primary key is ``(tenant, id)``."""
        row = conn.execute(
            "SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid"
            " AND a.attnum = i.indkey[0] WHERE i.indrelid = to_regclass(%s)"
            " AND i.indisprimary AND a.attname = 'tenant'",
            (self._table(name).as_string(conn),),
        ).fetchone()
        return row is not None

    def _prepare(self, conn: psycopg.Connection[Any], name: str) -> int | None:
        """The dimension of ``name``'s table (None when there is none), once it has the
        tenant column and keys: a table of an earlier ragcast gets them here."""
        dims = self._existing_dims(conn, name)
        if dims is not None and name not in self._tenanted:
            if not self._has_tenant_key(conn, name):
                self._lock(conn, name)
                if not self._has_tenant_key(conn, name):
                    self._add_tenants(conn, name)
            self._tenanted.add(name)
        return dims

    def _lock(self, conn: psycopg.Connection[Any], name: str) -> None:
        """Serialise DDL on ``name`` across processes: ``… IF NOT EXISTS`` still races."""
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (name,))

    # -- the contract ---------------------------------------------------------------------
    def ensure_collection(self, name: str, dimensions: int) -> None:
        """Create the collection's table and indexes, or check its dimension."""
        if self._dims.get(name) == dimensions:
            return
        with self._conn() as conn:
            existing = self._prepare(conn, name)
            if existing is None:
                self._lock(conn, name)
                existing = self._prepare(conn, name)
                if existing is None:
                    self._create(conn, name, dimensions)
                    self._tenanted.add(name)
                    existing = dimensions
        if existing != dimensions:
            raise ValidationError(
                "embedding_model.dimensions",
                f"collection {name} holds {existing}-dimensional vectors, not {dimensions}",
            )
        self._dims[name] = dimensions

    def _create(self, conn: psycopg.Connection[Any], name: str, dimensions: int) -> None:
        table, base = self._table(name), table_name(name)
        conn.execute(
            sql.SQL(
                "CREATE TABLE {} (tenant text NOT NULL DEFAULT '', id text NOT NULL,"
                " content_id text NOT NULL, chunk_index integer NOT NULL,"
                " embedding vector({}) NOT NULL, text text NOT NULL,"
                " metadata jsonb NOT NULL DEFAULT '{{}}', PRIMARY KEY (tenant, id))"
            ).format(table, sql.Literal(dimensions))
        )
        self._content_index(conn, name)
        ann = self._ann(dimensions)
        if ann is None:
            log.warning(
                "pgvector %s: %d dimensions, no HNSW index (exact search)", name, dimensions
            )
            return
        conn.execute(
            sql.SQL("CREATE INDEX {} ON {} USING hnsw (({}) {})").format(
                sql.Identifier(f"{base}_hnsw"),
                table,
                ann[0],
                sql.SQL(ann[1]),
            )
        )

    def _content_index(self, conn: psycopg.Connection[Any], name: str) -> None:
        """The btree that ``delete_stale`` and filtered searches of a tenant use."""
        conn.execute(
            sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} (tenant, content_id, chunk_index)").format(
                sql.Identifier(f"{table_name(name)}_tenant_content"), self._table(name)
            )
        )

    def _add_tenants(self, conn: psycopg.Connection[Any], name: str) -> None:
        """Bring a table of an earlier ragcast to this layout; its rows keep tenant ''."""
        table, base = self._table(name), table_name(name)
        log.info("pgvector %s: adding the tenant column and keys", name)
        conn.execute(
            sql.SQL(
                "ALTER TABLE {} ADD COLUMN IF NOT EXISTS tenant text NOT NULL DEFAULT ''"
            ).format(table)
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
        self._content_index(conn, name)
        conn.execute(
            sql.SQL("DROP INDEX IF EXISTS {}").format(
                sql.Identifier(self.schema, f"{base}_content")
            )
        )

    def _ann(self, dimensions: int) -> tuple[sql.Composable, str] | None:
        """The indexed expression and operator class, or None when HNSW cannot index it."""
        if dimensions <= HNSW_MAX_DIMS:
            return sql.SQL("embedding"), "vector_cosine_ops"
        if self._halfvec:
            return sql.SQL("embedding::halfvec({})").format(
                sql.Literal(dimensions)
            ), "halfvec_cosine_ops"
        return None

    def upsert_batch(
        self, name: str, records: Sequence[VectorRecord], *, tenant: str | None = None
    ) -> None:
        """One transaction: ``COPY`` (binary) into a temporary staging table, then
        ``INSERT … SELECT … ON CONFLICT (tenant, id) DO UPDATE`` into the collection's table.

        Row-by-row ``INSERT``s ran at about 0.7 of a bare ``COPY``; staging keeps the
        upsert semantics at ``COPY``'s speed.
        """
        check_tenant(tenant)
        latest = {r.id: r for r in records}  # one row per id: ON CONFLICT may not hit twice
        if not latest:
            return
        with self._conn() as conn, conn.cursor() as cur:
            cur.execute(
                "CREATE TEMP TABLE IF NOT EXISTS ragcast_stage (id text, content_id text,"
                " chunk_index integer, embedding vector, text text, metadata jsonb)"
                " ON COMMIT DELETE ROWS"
            )
            with cur.copy("COPY ragcast_stage FROM STDIN WITH (FORMAT BINARY)") as copy:
                copy.set_types(["text", "text", "int4", "vector", "text", "jsonb"])
                for r in latest.values():
                    content_id, chunk_index = _ids(r)
                    meta = {k: v for k, v in r.metadata.items() if v is not None}
                    vec = np.asarray(r.vector, dtype=np.float32)
                    text = r.text.replace("\x00", "")  # PostgreSQL text cannot hold NUL
                    copy.write_row((r.id, content_id, chunk_index, vec, text, Jsonb(meta)))
            cur.execute(
                sql.SQL(
                    "INSERT INTO {} (tenant, id, content_id, chunk_index, embedding, text,"
                    " metadata) SELECT %s, id, content_id, chunk_index, embedding, text,"
                    " metadata FROM ragcast_stage ON CONFLICT (tenant, id) DO UPDATE SET"
                    " content_id = EXCLUDED.content_id, chunk_index = EXCLUDED.chunk_index,"
                    " embedding = EXCLUDED.embedding, text = EXCLUDED.text,"
                    " metadata = EXCLUDED.metadata"
                ).format(self._table(name)),
                (tenant or "",),
            )

    def delete_stale(
        self, name: str, content_id: str, keep: int, *, tenant: str | None = None
    ) -> None:
        """Delete ``tenant``'s rows of ``content_id`` with ``chunk_index >= keep``."""
        check_tenant(tenant)
        with self._conn() as conn:
            if self._prepare(conn, name) is None:
                return
            conn.execute(
                sql.SQL(
                    "DELETE FROM {} WHERE tenant = %s AND content_id = %s AND chunk_index >= %s"
                ).format(self._table(name)),
                (tenant or "", content_id, keep),
            )

    def update_metadata(
        self, name: str, values: Mapping[str, Mapping[str, object]], *, tenant: str | None = None
    ) -> None:
        """Merge ``values[id]`` into the ``metadata`` of ``tenant``'s rows ``id``: one
        ``UPDATE`` joining ``unnest`` of the ids and their jsonb (``metadata || patch``);
        ids without a row join nothing. A ``content_id`` or ``chunk_index`` among the keys
        also sets its column, so that filters on it see the new value."""
        check_tenant(tenant)
        patches = {rid: p for rid, meta in values.items() if (p := metadata_patch(meta))}
        if not patches:
            return
        params = (
            list(patches),
            [Jsonb(p) for p in patches.values()],
            [str(p["content_id"]) if "content_id" in p else None for p in patches.values()],
            [int(p["chunk_index"]) if "chunk_index" in p else None for p in patches.values()],
            tenant or "",
        )
        with self._conn() as conn:
            if self._prepare(conn, name) is None:
                return
            conn.execute(
                sql.SQL(
                    "UPDATE {} AS t SET metadata = t.metadata || v.patch,"
                    " content_id = coalesce(v.content_id, t.content_id),"
                    " chunk_index = coalesce(v.chunk_index, t.chunk_index)"
                    " FROM unnest(%s::text[], %s::jsonb[], %s::text[], %s::integer[])"
                    " AS v(id, patch, content_id, chunk_index)"
                    " WHERE t.tenant = %s AND t.id = v.id"
                ).format(self._table(name)),
                params,
            )

    def query(
        self,
        name: str,
        vector: Sequence[float],
        top_k: int,
        where: dict[str, Any] | None = None,
        *,
        tenant: str | None = None,
    ) -> list[VectorHit]:
        """Nearest rows of ``tenant`` by cosine distance, filtered on columns and ``metadata``.

        The HNSW index is approximate and filters (the tenant's too) apply after it: with
        pgvector ≥ 0.8 the scan continues until ``top_k`` rows pass them; when fewer come
        back all the same, the search is repeated exactly (index scans off, the btree's
        bitmap scans allowed), so a selective filter never hides matching rows.
        """
        check_tenant(tenant)
        if matches_nothing(conditions(where)):
            return []
        cond, params = _where(where)
        params.update(tenant=tenant or "", q=np.asarray(vector, dtype=np.float32), k=top_k)
        with self._conn() as conn:
            dims = self._prepare(conn, name)
            if dims is None:
                return []
            stmt = self._search(name, dims, cond)
            rows = []
            if self._iterative:
                self._tune(conn, top_k)
                rows = conn.execute(stmt, params).fetchall()
            else:
                # Before 0.8 the planner picks HNSW or the tenant's btree by its estimate of
                # the tenant's size, and a stale estimate sends a big tenant to an exact
                # sort of all its rows (30 ms for 10,000): search the whole index first.
                wide = min(max(POST_FILTER_FACTOR * top_k, 40), 1000)
                self._tune(conn, wide)
                params["wide"] = wide
                rows = conn.execute(self._post_filtered(name, dims, cond), params).fetchall()
            if len(rows) < top_k:
                conn.execute("SET LOCAL enable_indexscan = off")
                rows = conn.execute(stmt, params).fetchall()
        return [VectorHit(id=r[0], score=float(r[3]), text=r[1], metadata=dict(r[2])) for r in rows]

    def _distance(self, dims: int) -> tuple[sql.Composable, sql.Composable]:
        """The indexed expression of a ``dims`` table and the query vector cast to match."""
        ann = self._ann(dims)
        expr = ann[0] if ann else sql.SQL("embedding")
        qexpr: sql.Composable = sql.SQL("%(q)s::vector")
        if ann and dims > HNSW_MAX_DIMS:
            qexpr = sql.SQL("%(q)s::vector::halfvec({})").format(sql.Literal(dims))
        return expr, qexpr

    def _search(self, name: str, dims: int, cond: sql.Composable) -> sql.Composed:
        """The nearest-rows statement on the HNSW expression of a ``dims`` table."""
        expr, qexpr = self._distance(dims)
        inner = sql.SQL(
            "SELECT id, text, metadata, ({e}) <=> {q} AS distance FROM {t}"
            " WHERE tenant = %(tenant)s AND {c} ORDER BY distance LIMIT %(k)s"
        ).format(e=expr, q=qexpr, t=self._table(name), c=cond)
        # An iterative scan may hand rows over slightly out of order: sort them again.
        return sql.SQL(
            "WITH found AS MATERIALIZED ({}) SELECT id, text, metadata, 1 - distance"
            " FROM found ORDER BY distance"
        ).format(inner)

    def _post_filtered(self, name: str, dims: int, cond: sql.Composable) -> sql.Composed:
        """The ``wide`` nearest rows of the whole table by HNSW, then the filters."""
        expr, qexpr = self._distance(dims)
        return sql.SQL(
            "WITH near AS MATERIALIZED (SELECT id, text, metadata, tenant, content_id,"
            " chunk_index, ({e}) <=> {q} AS distance FROM {t} ORDER BY distance"
            " LIMIT %(wide)s) SELECT id, text, metadata, 1 - distance FROM near"
            " WHERE tenant = %(tenant)s AND {c} ORDER BY distance LIMIT %(k)s"
        ).format(e=expr, q=qexpr, t=self._table(name), c=cond)

    def _tune(self, conn: psycopg.Connection[Any], top_k: int) -> None:
        """This transaction's HNSW settings for a search of ``top_k`` rows."""
        # ef_search caps how many rows a plain HNSW scan can return (default 40).
        stmt = sql.SQL("SET LOCAL hnsw.ef_search = {}").format(
            sql.Literal(min(max(40, top_k), 1000))
        )
        if self._iterative:
            stmt = sql.SQL("{}; SET LOCAL hnsw.iterative_scan = relaxed_order").format(stmt)
        conn.execute(stmt)

    def count(self, name: str, *, tenant: str | None = None) -> int:
        """Rows of ``tenant`` in the collection's table, all of them without a tenant
        (0 when it does not exist)."""
        check_tenant(tenant)
        with self._conn() as conn:
            if self._prepare(conn, name) is None:
                return 0
            stmt = sql.SQL("SELECT count(*) FROM {}").format(self._table(name))
            if tenant is None:
                row = conn.execute(stmt).fetchone()
            else:
                stmt = sql.SQL("{} WHERE tenant = %s").format(stmt)
                row = conn.execute(stmt, (tenant,)).fetchone()
        return int(row[0]) if row else 0

    def drop_collection(self, name: str) -> None:
        """Drop the collection's table, every tenant's rows with it."""
        with self._conn() as conn:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(self._table(name)))
        self._dims.pop(name, None)
        self._tenanted.discard(name)


def _ids(record: VectorRecord) -> tuple[str, int]:
    """``(content_id, chunk_index)`` from the metadata, else from the id ``cid:index``."""
    content_id, _, index = record.id.rpartition(":")
    cid = record.metadata.get("content_id", content_id)
    chunk = record.metadata.get("chunk_index", index if index.isdigit() else 0)
    return str(cid), int(chunk)


def _where(where: dict[str, Any] | None) -> tuple[sql.Composable, dict[str, Any]]:
    """A SQL condition and its parameters: columns for ids, jsonb for the rest."""
    parts: list[sql.Composable] = [sql.SQL("TRUE")]
    params: dict[str, Any] = {}
    for n, c in enumerate(conditions(where)):
        part, values = _condition(c, f"w{n}")
        parts.append(part)
        params.update(values)
    return sql.SQL(" AND ").join(parts), params


def _condition(c: Condition, p: str) -> tuple[sql.Composable, dict[str, Any]]:
    """One condition, its placeholders named ``p…``."""
    if c.kind == "range":
        return _range(c, p)
    if c.key in COLUMNS:
        col = sql.Identifier(c.key)
        if c.kind == "in":
            return sql.SQL("{} = ANY({})").format(col, sql.Placeholder(p)), {p: list(c.values)}
        return sql.SQL("{} = {}").format(col, sql.Placeholder(p)), {p: c.value}
    if c.kind == "in":
        part = sql.SQL("metadata -> {} = ANY({}::jsonb[])").format(
            sql.Literal(c.key), sql.Placeholder(p)
        )
        return part, {p: [Jsonb(v) for v in c.values]}
    return sql.SQL("metadata @> {}").format(sql.Placeholder(p)), {p: Jsonb({c.key: c.value})}


def _range(c: Condition, p: str) -> tuple[sql.Composable, dict[str, Any]]:
    """``gte``/``lte`` on a column, or on a number in ``metadata`` (other types never
    match: the ``CASE`` keeps text from reaching the cast)."""
    value: sql.Composable = sql.Identifier(c.key)
    if c.key not in COLUMNS:
        value = sql.SQL(
            "(CASE WHEN jsonb_typeof(metadata -> {k}) = 'number'"
            " THEN (metadata ->> {k})::double precision END)"
        ).format(k=sql.Literal(c.key))
    parts: list[sql.Composable] = []
    params: dict[str, Any] = {}
    for op, bound, suffix in ((">=", c.gte, "a"), ("<=", c.lte, "b")):
        if bound is not None:
            parts.append(
                sql.SQL("{} {} {}").format(value, sql.SQL(op), sql.Placeholder(p + suffix))
            )
            params[p + suffix] = bound
    return sql.SQL(" AND ").join(parts), params
