"""Pinecone through the official ``pinecone`` SDK: one index, a namespace per tenant.

- **Index**: ``RAGCAST_PINECONE_HOST`` (the index's data-plane host, used as is) or
  ``RAGCAST_PINECONE_INDEX`` (resolved to its host once). ragcast does not create the
  index: it must exist with the cosine metric, and its dimension must be the job's,
  else the job is refused with a ``400`` at submission.
- **Tenancy**: a tenant's records of a collection live in the namespace
  ``RAGCAST_PINECONE_NAMESPACE_PREFIX + collection + "/" + tenant`` (records without a
  tenant in ``RAGCAST_PINECONE_NAMESPACE_PREFIX + collection``); every call names its
  namespace, so tenants never meet, and record ids stay the bare ragcast ids. Collection
  names never contain ``/`` (Chroma's rules for names), nor do tenants, so a namespace
  belongs to one collection: dropping a collection empties the namespace of each of its
  tenants, found in ``describe_index_stats``.
- **Limits**: a request carries at most 1,000 vectors and about 1.9 MB of JSON (the
  cap is 2 MB), batched by an upper bound of each vector's encoded size; requests go out
  in parallel (``RAGCAST_PINECONE_UPSERT_WORKERS``).
- **Long text**: metadata is capped at 40 KB a vector. The chunk text is stored in
  metadata ``text``; when the metadata would pass :data:`METADATA_BUDGET` bytes, the
  text is cut at a UTF-8 character boundary to fit and ``text_truncated: true`` is
  added. Search answers the full text from ragcast's own chunk store in that case.
- **Metadata updates**: ``update_metadata`` sends one ``update`` by id
  (``POST /vectors/update`` with ``setMetadata``, which Pinecone merges into the
  record's metadata) per record, in parallel; Pinecone answers an id it does not hold
  with ``200`` and changes nothing.
- **Stale chunks**: serverless indexes cannot delete by metadata filter, so
  ``delete_stale`` lists the ids with prefix ``content_id:`` and deletes those whose
  chunk index is ``keep`` or more.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

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
    from pinecone import Pinecone
    from pinecone.errors import ApiError, PineconeConnectionError, PineconeTimeoutError
    from pinecone.index import Index
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "the pinecone backend needs the 'pinecone' extra: pip install ragcast[pinecone]"
    ) from exc

if TYPE_CHECKING:
    from ragcast.settings import Settings

T = TypeVar("T")

MAX_VECTORS = 1000  # Pinecone: vectors per upsert/delete request
REQUEST_BUDGET = 1_900_000  # bytes of JSON per request; Pinecone's cap is 2 MB
METADATA_BUDGET = 40_000  # bytes of JSON metadata per vector; Pinecone's cap is 40 KB
FIELD_BUDGET = 1_000  # bytes of one other string field, when those alone are too large
FLOAT_BYTES = 25  # an upper bound of one float in JSON: "-1.2345678901234567e-308,"
#: Pinecone answers every number as a float
INT_FIELDS = ("chunk_index", "token_count", "upload_ts")
TENANT_SEP = "/"  # between a collection and a tenant in a namespace


def json_size(value: Any) -> int:
    """Bytes of ``value`` as compact UTF-8 JSON (what the SDK sends)."""
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


def trim_utf8(text: str, max_bytes: int) -> str:
    """The longest prefix of ``text`` whose JSON string body fits ``max_bytes``.

    The cut falls on a character boundary; escapes (quotes, backslashes, control
    characters) count at their encoded size.
    """
    max_bytes = max(max_bytes, 0)
    budget = max_bytes
    while True:
        cut = text.encode()[:budget].decode("utf-8", errors="ignore")
        over = json_size(cut) - 2 - max_bytes
        if over <= 0:
            return cut
        budget -= over


def fit_metadata(metadata: dict[str, Any], text: str) -> dict[str, Any]:
    """Metadata for Pinecone: no nulls, and ``text`` trimmed to keep it within budget.

    Should the other fields alone come near the budget (a title of tens of KB), each
    string among them is first cut to :data:`FIELD_BUDGET` bytes.
    """
    meta = {k: v for k, v in metadata.items() if v is not None and k != "text"}
    if json_size(meta) > METADATA_BUDGET // 2:
        meta = {k: trim_utf8(v, FIELD_BUDGET) if isinstance(v, str) else v for k, v in meta.items()}
    meta["text"] = text
    if json_size(meta) <= METADATA_BUDGET:
        return meta
    meta["text"] = ""
    meta["text_truncated"] = True
    meta["text"] = trim_utf8(text, METADATA_BUDGET - json_size(meta))
    return meta


class PineconeStore(VectorStore):
    """Namespaces of one Pinecone index (cosine); ids are ``content_id:chunk_index``."""

    id = "pinecone"
    max_batch = MAX_VECTORS

    def __init__(self, index: Index, *, namespace_prefix: str = "", workers: int = 4) -> None:
        self._index = index
        self.namespace_prefix = namespace_prefix
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pinecone")
        self._dimension: int | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> PineconeStore:
        """The index at ``RAGCAST_PINECONE_HOST``, or the one named ``RAGCAST_PINECONE_INDEX``."""
        if not settings.pinecone_api_key:
            raise ConfigurationError("pinecone needs RAGCAST_PINECONE_API_KEY")
        if not (settings.pinecone_host or settings.pinecone_index):
            raise ConfigurationError(
                "pinecone needs RAGCAST_PINECONE_HOST or RAGCAST_PINECONE_INDEX"
            )
        pc = Pinecone(api_key=settings.pinecone_api_key)
        with _errors():
            if settings.pinecone_host:
                index = pc.index(host=settings.pinecone_host)
            else:
                index = pc.index(name=settings.pinecone_index or "")
        return cls(
            index,
            namespace_prefix=settings.pinecone_namespace_prefix,
            workers=settings.pinecone_upsert_workers,
        )

    def namespace(self, name: str, tenant: str | None = None) -> str:
        """The namespace holding ``tenant``'s records of collection ``name``."""
        base = self.namespace_prefix + name
        tenant = check_tenant(tenant)
        return base if tenant is None else base + TENANT_SEP + tenant

    def _namespaces(self, name: str) -> dict[str, int]:
        """The non-empty namespaces of collection ``name`` (every tenant's) and their
        vector counts."""
        base = self.namespace(name)
        with _errors():
            stats = self._index.describe_index_stats()
        return {
            ns: int(summary.vector_count)
            for ns, summary in stats.namespaces.items()
            if ns == base or ns.startswith(base + TENANT_SEP)
        }

    def ensure_collection(self, name: str, dimensions: int) -> None:
        """Check the index's dimension and metric (namespaces need no creation)."""
        if self._dimension is None:
            with _errors():
                stats = self._index.describe_index_stats()
            if stats.metric not in (None, "cosine"):
                raise ValidationError(
                    "vector_db.id", f"the Pinecone index uses {stats.metric}, not cosine"
                )
            self._dimension = stats.dimension
        if self._dimension is not None and self._dimension != dimensions:
            raise ValidationError(
                "embedding_model.dimensions",
                f"the Pinecone index holds {self._dimension}-dimensional vectors, not {dimensions}",
            )

    def upsert(
        self, name: str, records: Sequence[VectorRecord], *, tenant: str | None = None
    ) -> None:
        """Upsert any number of records: size-bounded requests sent in parallel."""
        self.upsert_batch(name, records, tenant=tenant)

    def upsert_batch(
        self, name: str, records: Sequence[VectorRecord], *, tenant: str | None = None
    ) -> None:
        """Upsert ``records`` into ``tenant``'s namespace, in requests within Pinecone's
        count and size caps."""
        namespace = self.namespace(name, tenant)
        requests = list(_requests(records))

        def send(vectors: list[dict[str, Any]]) -> None:
            with _errors():
                self._index.upsert(vectors=vectors, namespace=namespace)

        self._parallel(send, requests)

    def _parallel(self, fn: Callable[[T], None], items: list[T]) -> None:
        if len(items) == 1:
            fn(items[0])
            return
        for _ in self._pool.map(fn, items):  # re-raises the first failure
            pass

    def delete_stale(
        self, name: str, content_id: str, keep: int, *, tenant: str | None = None
    ) -> None:
        """Delete ``content_id:i`` for every listed ``i >= keep`` of ``tenant``."""
        namespace, prefix = self.namespace(name, tenant), f"{content_id}:"
        stale: list[str] = []
        with _errors():
            for page in self._index.list(prefix=prefix, namespace=namespace):
                for item in page.vectors:
                    suffix = (item.id or "")[len(prefix) :]
                    if suffix.isdigit() and int(suffix) >= keep:
                        stale.append(item.id or "")
            for start in range(0, len(stale), MAX_VECTORS):
                self._index.delete(ids=stale[start : start + MAX_VECTORS], namespace=namespace)

    def update_metadata(
        self, name: str, values: Mapping[str, Mapping[str, object]], *, tenant: str | None = None
    ) -> None:
        """Merge ``values[id]`` into the metadata of ``id`` in ``tenant``'s namespace: one
        update by id each (``setMetadata`` merges), sent in parallel. ``text`` is not
        taken: it holds the chunk text."""
        namespace = self.namespace(name, tenant)
        updates = [
            (rid, patch)
            for rid, meta in values.items()
            if (patch := metadata_patch(meta, ("text",)))
        ]

        def send(update: tuple[str, dict[str, Any]]) -> None:
            with _errors():
                self._index.update(id=update[0], set_metadata=update[1], namespace=namespace)

        if updates:
            self._parallel(send, updates)

    def query(
        self,
        name: str,
        vector: Sequence[float],
        top_k: int,
        where: dict[str, Any] | None = None,
        *,
        tenant: str | None = None,
    ) -> list[VectorHit]:
        """Nearest vectors in ``tenant``'s namespace; text from the metadata."""
        namespace, flt = self.namespace(name, tenant), _filter(where)
        if matches_nothing(conditions(where)):
            return []
        with _errors():
            res = self._index.query(
                vector=np.asarray(vector, dtype=np.float32).tolist(),
                top_k=top_k,
                namespace=namespace,
                filter=flt,
                include_metadata=True,
            )
        hits = []
        for match in res.matches:
            meta = dict(match.metadata or {})
            text = str(meta.pop("text", ""))
            for key in INT_FIELDS:
                if isinstance(meta.get(key), float):
                    meta[key] = int(meta[key])
            hits.append(VectorHit(id=match.id, score=float(match.score), text=text, metadata=meta))
        return hits

    def count(self, name: str, *, tenant: str | None = None) -> int:
        """Vectors in ``tenant``'s namespace, or in all of the collection's without a
        tenant (0 when there are none)."""
        namespaces = self._namespaces(name)
        if tenant is None:
            return sum(namespaces.values())
        return namespaces.get(self.namespace(name, tenant), 0)

    def drop_collection(self, name: str) -> None:
        """Delete every vector of the collection's namespaces."""
        for namespace in self._namespaces(name):
            try:
                with _errors():
                    self._index.delete(delete_all=True, namespace=namespace)
            except ApiError as exc:
                if getattr(exc, "status_code", None) != 404:  # emptied meanwhile
                    raise

    def close(self) -> None:
        """Stop the upsert threads and close the SDK's connections."""
        self._pool.shutdown(wait=True)
        self._index.close()


def _requests(records: Sequence[VectorRecord]) -> Iterator[list[dict[str, Any]]]:
    """Pinecone vectors grouped into requests of ≤ 1,000 and ≤ ``REQUEST_BUDGET`` bytes."""
    batch: list[dict[str, Any]] = []
    size = 0
    for r in records:
        values = np.asarray(r.vector, dtype=np.float32)
        metadata = fit_metadata(r.metadata, r.text)
        item = {"id": r.id, "values": values.tolist(), "metadata": metadata}
        item_size = len(r.id.encode()) + FLOAT_BYTES * len(values) + json_size(metadata) + 48
        if batch and (len(batch) == MAX_VECTORS or size + item_size > REQUEST_BUDGET):
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += item_size
    if batch:
        yield batch


def _filter(where: dict[str, Any] | None) -> dict[str, Any] | None:
    """ragcast's ``where`` in Pinecone's filter language: one clause per operator."""
    clauses = [clause for c in conditions(where) for clause in _clauses(c)]
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def _clauses(c: Condition) -> list[dict[str, Any]]:
    if c.kind == "in":
        return [{c.key: {"$in": list(c.values)}}]
    if c.kind == "contains":  # a list field matches $in when one of its values is listed
        return [{c.key: {"$in": [c.value]}}]
    if c.kind == "eq":
        return [{c.key: {"$eq": c.value}}]
    bounds = (("$gte", c.gte), ("$lte", c.lte))
    return [{c.key: {op: bound}} for op, bound in bounds if bound is not None]


@contextmanager
def _errors() -> Iterator[None]:
    """Pinecone's throttling, outages and unreachable hosts are transient for ragcast."""
    try:
        yield
    except (PineconeConnectionError, PineconeTimeoutError) as exc:
        raise TransientError(f"pinecone is unreachable: {exc}") from exc
    except ApiError as exc:
        status = getattr(exc, "status_code", None) or 0
        if status == 429 or status >= 500:
            raise TransientError(f"pinecone answered {status}: {exc}") from exc
        raise
