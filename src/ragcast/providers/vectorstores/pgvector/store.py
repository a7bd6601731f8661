"""The pgvector store: :class:`PgVectorStore` on pooled psycopg connections.

Its tables and their migration are in :mod:`.schema`, the translation of filters in
:mod:`.filters`; the package's docstring describes the layout and the search.
"""

from __future__ import annotations

import queue
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql
from psycopg.types.json import Jsonb

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
from ragcast.providers.vectorstores.pgvector.filters import where_clause
from ragcast.providers.vectorstores.pgvector.schema import (
    HNSW_MAX_DIMS,
    add_counts,
    add_tenants,
    ann_index,
    counts_table,
    create_table,
    existing_dims,
    has_counts,
    has_tenant_key,
    lock,
    qualified_table,
)

if TYPE_CHECKING:
    from ragcast.settings import Settings

#: a tenant of at most this many rows is searched exactly (its rows by the btree, sorted)
EXACT_ROWS = 1000
#: HNSW's candidate list (``hnsw.ef_search``) in a search of a bigger tenant
EF_SEARCH = 200
#: pgvector's ceiling for ``hnsw.ef_search``
MAX_EF_SEARCH = 1000
#: pgvector's default ``hnsw.max_scan_tuples``: how far an iterative scan goes (≥ 0.8)
MAX_SCAN_TUPLES = 20000
#: how many times more rows than the tenant's share says an HNSW scan must read
SHARE_MARGIN = 2
#: a filter on at most this many content ids is searched exactly (by the btree)
EXACT_CONTENTS = 20


class PgVectorStore(VectorStore):
    """Tables with a ``vector`` column in PostgreSQL; cosine distance ``<=>``."""

    id = "pgvector"
    max_batch = 1000

    def __init__(self, dsn: str, *, schema: str = "public", pool_size: int = 4) -> None:
        self.dsn = dsn
        self.schema = schema
        self._idle: queue.LifoQueue[psycopg.Connection[Any]] = queue.LifoQueue(pool_size)
        self._dims: dict[str, int] = {}
        self._ready: set[str] = set()  # tables known to have the tenant keys and counts
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
        return qualified_table(self.schema, name)

    def _prepare(self, conn: psycopg.Connection[Any], name: str) -> int | None:
        """The dimension of ``name``'s table (None when there is none), once it has the
        tenant column and keys and the per-tenant row counts: a table of an earlier
        ragcast gets them here."""
        dims = existing_dims(conn, self._table(name))
        if dims is not None and name not in self._ready:
            if not has_tenant_key(conn, self._table(name)):
                lock(conn, name)
                if not has_tenant_key(conn, self._table(name)):
                    add_tenants(conn, self.schema, name)
            if not has_counts(conn, self.schema, name):
                lock(conn, name)
                if not has_counts(conn, self.schema, name):
                    add_counts(conn, self.schema, name)
            self._ready.add(name)
        return dims

    # -- the contract ---------------------------------------------------------------------
    def ensure_collection(self, name: str, dimensions: int) -> None:
        """Create the collection's table and indexes, or check its dimension."""
        if self._dims.get(name) == dimensions:
            return
        with self._conn() as conn:
            existing = self._prepare(conn, name)
            if existing is None:
                lock(conn, name)
                existing = self._prepare(conn, name)
                if existing is None:
                    create_table(conn, self.schema, name, dimensions, halfvec=self._halfvec)
                    self._ready.add(name)
                    existing = dimensions
        if existing != dimensions:
            raise ValidationError(
                "embedding_model.dimensions",
                f"collection {name} holds {existing}-dimensional vectors, not {dimensions}",
            )
        self._dims[name] = dimensions

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

        The tenant's row count (kept by triggers, :mod:`.schema`) picks the plan. A tenant
        of at most :data:`EXACT_ROWS` rows, or a filter on a few content ids, is searched
        exactly: its rows by the btree, sorted by distance. A bigger one by HNSW, forced
        (sorts off, so that no estimate sends it to an exact sort of all its rows), with
        the filters applied to the rows the scan yields: with pgvector ≥ 0.8 the scan goes
        on until ``top_k`` rows pass them; before, ``hnsw.ef_search`` is widened to the
        tenant's share of the table. A tenant too small a share of it for either is
        searched exactly, and an HNSW search that comes back short is repeated exactly, so
        a selective filter never hides matching rows.
        """
        check_tenant(tenant)
        conds = conditions(where)
        if matches_nothing(conds):
            return []
        cond, params = where_clause(where)
        params.update(tenant=tenant or "", q=np.asarray(vector, dtype=np.float32), k=top_k)
        with self._conn() as conn:
            dims = self._prepare(conn, name)
            if dims is None:
                return []
            rows_of, total = self._sizes(conn, name, tenant or "")
            if rows_of == 0:
                return []
            stmt = self._search(name, dims, cond)
            ef = None
            if ann_index(dims, halfvec=self._halfvec) is not None and not _few_contents(conds):
                ef = self._ef_search(top_k, rows_of, total)
            rows = []
            if ef is not None:
                self._tune(conn, ef)
                rows = conn.execute(stmt, params).fetchall()
            if len(rows) < top_k:
                conn.execute("SET LOCAL enable_indexscan = off; SET LOCAL enable_sort = on")
                rows = conn.execute(stmt, params).fetchall()
        return [VectorHit(id=r[0], score=float(r[3]), text=r[1], metadata=dict(r[2])) for r in rows]

    def _sizes(self, conn: psycopg.Connection[Any], name: str, tenant: str) -> tuple[int, int]:
        """``tenant``'s rows in ``name``'s table, and the table's (the planner's estimate;
        the sum of the counts before the table was first analysed)."""
        row = conn.execute(
            sql.SQL(
                "SELECT (SELECT row_count FROM {c} WHERE tenant = %s),"
                " CASE WHEN r.reltuples > 0 THEN r.reltuples::bigint"
                " ELSE (SELECT sum(row_count) FROM {c})::bigint END"
                " FROM pg_class r WHERE r.oid = %s::regclass"
            ).format(c=counts_table(self.schema, name)),
            (tenant, self._table(name).as_string(conn)),
        ).fetchone()
        rows_of = int(row[0] or 0) if row else 0
        return rows_of, max(rows_of, int(row[1] or 0) if row else 0)

    def _ef_search(self, top_k: int, rows_of: int, total: int) -> int | None:
        """``hnsw.ef_search`` for a search of ``top_k`` of a tenant's ``rows_of`` rows among
        ``total``, or None where the tenant is searched exactly."""
        if rows_of <= EXACT_ROWS:
            return None
        # Rows of other tenants come out of the scan too: it must read this many.
        needed = SHARE_MARGIN * top_k * total // rows_of
        if self._iterative:
            return min(max(EF_SEARCH, top_k), MAX_EF_SEARCH) if needed <= MAX_SCAN_TUPLES else None
        ef = max(EF_SEARCH, top_k, needed)
        return ef if ef <= MAX_EF_SEARCH else None

    def _distance(self, dims: int) -> tuple[sql.Composable, sql.Composable]:
        """The indexed expression of a ``dims`` table and the query vector cast to match."""
        ann = ann_index(dims, halfvec=self._halfvec)
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

    def _tune(self, conn: psycopg.Connection[Any], ef: int) -> None:
        """This transaction's settings for an HNSW search with a candidate list of ``ef``:
        sorts off, so that the planner takes the index whatever it estimates."""
        stmt = sql.SQL("SET LOCAL hnsw.ef_search = {}; SET LOCAL enable_sort = off").format(
            sql.Literal(ef)
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
            conn.execute(
                sql.SQL("DROP TABLE IF EXISTS {}, {}").format(
                    self._table(name), counts_table(self.schema, name)
                )
            )
        self._dims.pop(name, None)
        self._ready.discard(name)


def _ids(record: VectorRecord) -> tuple[str, int]:
    """``(content_id, chunk_index)`` from the metadata, else from the id ``cid:index``."""
    content_id, _, index = record.id.rpartition(":")
    cid = record.metadata.get("content_id", content_id)
    chunk = record.metadata.get("chunk_index", index if index.isdigit() else 0)
    return str(cid), int(chunk)


def _few_contents(conds: Sequence[Condition]) -> bool:
    """Whether the conditions keep the rows of at most :data:`EXACT_CONTENTS` contents,
    which the btree finds sooner than HNSW would come across them."""
    return any(
        c.key == "content_id"
        and (c.kind == "eq" or (c.kind == "in" and len(c.values) <= EXACT_CONTENTS))
        for c in conds
    )
