"""pgvector: PostgreSQL with the ``vector`` extension, one table per collection.

Each ragcast collection is a table in ``RAGCAST_PGVECTOR_SCHEMA`` (default ``public``)
named by :func:`table_name` (ragcast names carry ``-``, which SQL identifiers do not):

    id text PRIMARY KEY, content_id text, chunk_index integer,
    embedding vector(d), text text, metadata jsonb

with a btree index on ``(content_id, chunk_index)`` and an HNSW index with
``vector_cosine_ops``. The dimension lives in the column's type modifier, which is what
:meth:`PgVectorStore.ensure_collection` checks. HNSW indexes ``vector`` columns of at
most 2,000 dimensions; wider collections are indexed as ``halfvec`` where the extension
has it (pgvector ≥ 0.7) and searched exactly otherwise.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from ragcast.errors import ConfigurationError, TransientError, ValidationError
from ragcast.providers.vectorstores.base import VectorHit, VectorRecord, VectorStore

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
        self._halfvec: bool | None = None

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
        if self._halfvec is None:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            conn.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema))
            )
            row = conn.execute(
                "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
            ).fetchone()
            version = tuple(int(p) for p in re.findall(r"\d+", row[0] if row else "0")[:2])
            self._halfvec = version >= (0, 7)
        register_vector(conn)
        return conn

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

    # -- the contract ---------------------------------------------------------------------
    def ensure_collection(self, name: str, dimensions: int) -> None:
        """Create the collection's table and indexes, or check its dimension."""
        if self._dims.get(name) == dimensions:
            return
        with self._conn() as conn:
            existing = self._existing_dims(conn, name)
            if existing is None:
                # Serialise creation across processes: CREATE … IF NOT EXISTS still races.
                conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (name,))
                existing = self._existing_dims(conn, name)
                if existing is None:
                    self._create(conn, name, dimensions)
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
                "CREATE TABLE {} (id text PRIMARY KEY, content_id text NOT NULL,"
                " chunk_index integer NOT NULL, embedding vector({}) NOT NULL,"
                " text text NOT NULL, metadata jsonb NOT NULL DEFAULT '{{}}')"
            ).format(table, sql.Literal(dimensions))
        )
        conn.execute(
            sql.SQL("CREATE INDEX {} ON {} (content_id, chunk_index)").format(
                sql.Identifier(f"{base}_content"), table
            )
        )
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

    def _ann(self, dimensions: int) -> tuple[sql.Composable, str] | None:
        """The indexed expression and operator class, or None when HNSW cannot index it."""
        if dimensions <= HNSW_MAX_DIMS:
            return sql.SQL("embedding"), "vector_cosine_ops"
        if self._halfvec:
            return sql.SQL("embedding::halfvec({})").format(
                sql.Literal(dimensions)
            ), "halfvec_cosine_ops"
        return None

    def upsert_batch(self, name: str, records: Sequence[VectorRecord]) -> None:
        """One transaction: ``COPY`` (binary) into a temporary staging table, then
        ``INSERT … SELECT … ON CONFLICT (id) DO UPDATE`` into the collection's table.

        Row-by-row ``INSERT``s ran at about 0.7 of a bare ``COPY``; staging keeps the
        upsert semantics at ``COPY``'s speed.
        """
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
                    "INSERT INTO {} (id, content_id, chunk_index, embedding, text, metadata)"
                    " SELECT id, content_id, chunk_index, embedding, text, metadata"
                    " FROM ragcast_stage ON CONFLICT (id) DO UPDATE SET"
                    " content_id = EXCLUDED.content_id, chunk_index = EXCLUDED.chunk_index,"
                    " embedding = EXCLUDED.embedding, text = EXCLUDED.text,"
                    " metadata = EXCLUDED.metadata"
                ).format(self._table(name))
            )

    def delete_stale(self, name: str, content_id: str, keep: int) -> None:
        """Delete rows of ``content_id`` with ``chunk_index >= keep``."""
        with self._conn() as conn:
            if self._existing_dims(conn, name) is None:
                return
            conn.execute(
                sql.SQL("DELETE FROM {} WHERE content_id = %s AND chunk_index >= %s").format(
                    self._table(name)
                ),
                (content_id, keep),
            )

    def query(
        self, name: str, vector: Sequence[float], top_k: int, where: dict[str, Any] | None = None
    ) -> list[VectorHit]:
        """Nearest rows by cosine distance, with filters on columns and ``metadata``.

        The HNSW index is approximate and filters apply after it: when a filtered search
        returns fewer than ``top_k`` rows, it is repeated exactly (index scans off), so
        a selective filter never hides matching rows.
        """
        vec = np.asarray(vector, dtype=np.float32)
        with self._conn() as conn:
            dims = self._existing_dims(conn, name)
            if dims is None:
                return []
            ann = self._ann(dims)
            expr = ann[0] if ann else sql.SQL("embedding")
            qexpr: sql.Composable = sql.SQL("%(q)s::vector")
            if ann and dims > HNSW_MAX_DIMS:
                qexpr = sql.SQL("%(q)s::vector::halfvec({})").format(sql.Literal(dims))
            cond, params = _where(where)
            stmt = sql.SQL(
                "SELECT id, text, metadata, 1 - (({e}) <=> {q}) AS score FROM {t}"
                " WHERE {c} ORDER BY ({e}) <=> {q} LIMIT %(k)s"
            ).format(e=expr, q=qexpr, t=self._table(name), c=cond)
            params.update(q=vec, k=top_k)
            # ef_search caps how many rows an HNSW scan can return (default 40).
            conn.execute(
                sql.SQL("SET LOCAL hnsw.ef_search = {}").format(
                    sql.Literal(min(max(40, top_k), 1000))
                )
            )
            rows = conn.execute(stmt, params).fetchall()
            if where and len(rows) < top_k:
                conn.execute("SET LOCAL enable_indexscan = off")
                rows = conn.execute(stmt, params).fetchall()
        return [VectorHit(id=r[0], score=float(r[3]), text=r[1], metadata=dict(r[2])) for r in rows]

    def count(self, name: str) -> int:
        """Rows in the collection's table (0 when it does not exist)."""
        with self._conn() as conn:
            if self._existing_dims(conn, name) is None:
                return 0
            row = conn.execute(
                sql.SQL("SELECT count(*) FROM {}").format(self._table(name))
            ).fetchone()
        return int(row[0]) if row else 0


def _ids(record: VectorRecord) -> tuple[str, int]:
    """``(content_id, chunk_index)`` from the metadata, else from the id ``cid:index``."""
    content_id, _, index = record.id.rpartition(":")
    cid = record.metadata.get("content_id", content_id)
    chunk = record.metadata.get("chunk_index", index if index.isdigit() else 0)
    return str(cid), int(chunk)


def _where(where: dict[str, Any] | None) -> tuple[sql.Composable, dict[str, Any]]:
    """A SQL condition and its parameters: columns for ids, jsonb for the rest."""
    if not where:
        return sql.SQL("TRUE"), {}
    parts: list[sql.Composable] = []
    params: dict[str, Any] = {}
    for n, (key, value) in enumerate(where.items()):
        p = f"w{n}"
        values = value["$in"] if isinstance(value, dict) and "$in" in value else None
        if key in COLUMNS:
            col = sql.Identifier(key)
            if values is None:
                parts.append(sql.SQL("{} = {}").format(col, sql.Placeholder(p)))
                params[p] = value
            else:
                parts.append(sql.SQL("{} = ANY({})").format(col, sql.Placeholder(p)))
                params[p] = list(values)
        elif values is None:
            parts.append(sql.SQL("metadata @> {}").format(sql.Placeholder(p)))
            params[p] = Jsonb({key: value})
        else:
            parts.append(
                sql.SQL("metadata -> {} = ANY({}::jsonb[])").format(
                    sql.Literal(key), sql.Placeholder(p)
                )
            )
            params[p] = [Jsonb(v) for v in values]
    return sql.SQL(" AND ").join(parts), params
