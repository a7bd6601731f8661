"""pgvector: PostgreSQL with the ``vector`` extension, one table per collection.

Each ragcast collection is a table in ``RAGCAST_PGVECTOR_SCHEMA`` (default ``public``)
named by :func:`table_name` (ragcast names carry ``-``, which SQL identifiers do not):

    tenant text NOT NULL DEFAULT '', id text, content_id text, chunk_index integer,
    embedding vector(d), text text, metadata jsonb, PRIMARY KEY (tenant, id)

with a btree index on ``(tenant, content_id, chunk_index)`` and an HNSW index with
``vector_cosine_ops``, and rows of up to 8 kB kept whole in the heap (no TOAST for the
vector). Tenants share the table: every call for a tenant has ``WHERE tenant = …``, and
records written without a tenant have ``tenant = ''``. Beside it, ``{table}$tenants``
holds each tenant's row count, kept by statement-level triggers. Tables made by an
earlier ragcast (``id`` alone the primary key, no ``tenant``; no counts) get the column,
the new keys and the counts on first use; their rows are the ones without a tenant.

:meth:`PgVectorStore.update_metadata` merges with jsonb ``||`` in one ``UPDATE … FROM
unnest(…)``; a merged ``content_id`` or ``chunk_index`` goes to its column too, which
filters on those keys read.

The dimension lives in the column's type modifier, which is what
:meth:`PgVectorStore.ensure_collection` checks. HNSW indexes ``vector`` columns of at
most 2,000 dimensions; wider collections are indexed as ``halfvec`` where the extension
has it (pgvector ≥ 0.7) and searched exactly otherwise. The tenant's row count picks the
plan of a search: a tenant of at most :data:`EXACT_ROWS` rows (or a filter on a few
content ids) is ranked exactly from the btree, a bigger one by HNSW with
``hnsw.ef_search`` 200, the tenant and the other filters applied to the rows the scan
yields: with pgvector ≥ 0.8 the scan goes on until enough rows pass
(``hnsw.iterative_scan``), before it the candidate list widens to the tenant's share of
the table. A search that still comes back short is repeated exactly.

The store is in :mod:`.store`, the tables' DDL and migration in :mod:`.schema`, and the
translation of filters to SQL in :mod:`.filters`.
"""

from __future__ import annotations

# Checked before the modules below import them, so that a missing extra is named.
try:
    import psycopg  # noqa: F401
    from pgvector.psycopg import register_vector  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "the pgvector backend needs the 'pgvector' extra: pip install ragcast[pgvector]"
    ) from exc

from ragcast.providers.vectorstores.pgvector.filters import COLUMNS
from ragcast.providers.vectorstores.pgvector.schema import HNSW_MAX_DIMS, table_name
from ragcast.providers.vectorstores.pgvector.store import EXACT_ROWS, PgVectorStore

__all__ = ["COLUMNS", "EXACT_ROWS", "HNSW_MAX_DIMS", "PgVectorStore", "table_name"]
