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
    add_tenants,
    ann_index,
    create_table,
    existing_dims,
    has_tenant_key,
    lock,
    qualified_table,
)

if TYPE_CHECKING:
    from ragcast.settings import Settings

#: before pgvector 0.8, a filtered search first reads this many times top_k by HNSW
POST_FILTER_FACTOR = 4


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
        return qualified_table(self.schema, name)

    def _prepare(self, conn: psycopg.Connection[Any], name: str) -> int | None:
        """The dimension of ``name``'s table (None when there is none), once it has the
        tenant column and keys: a table of an earlier ragcast gets them here."""
        dims = existing_dims(conn, self._table(name))
        if dims is not None and name not in self._tenanted:
            if not has_tenant_key(conn, self._table(name)):
                lock(conn, name)
                if not has_tenant_key(conn, self._table(name)):
                    add_tenants(conn, self.schema, name)
            self._tenanted.add(name)
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
                    self._tenanted.add(name)
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

        The HNSW index is approximate and filters (the tenant's too) apply after it: with
        pgvector ≥ 0.8 the scan continues until ``top_k`` rows pass them; when fewer come
        back all the same, the search is repeated exactly (index scans off, the btree's
        bitmap scans allowed), so a selective filter never hides matching rows.
        """
        check_tenant(tenant)
        if matches_nothing(conditions(where)):
            return []
        cond, params = where_clause(where)
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
