"""Qdrant: a server by URL (``RAGCAST_QDRANT_URL``) or local mode on a path.

Layout of a collection (one per ragcast collection, same name):

- a named dense vector ``dense`` (cosine) that every point has and every query uses;
- a named multivector ``multi`` (``MAX_SIM`` late interaction), added the first time a
  batch carries ``VectorRecord.multi_vector`` (Qdrant ≥ 1.18 adds named vectors to an
  existing collection), so one collection serves single- and multi-vector jobs alike;
- tenants share the collection: a tenant's points carry it in the payload field
  ``tenant``, and every call for a tenant filters on it (``must``); points written
  without a tenant have no such field, and calls without one filter on its absence;
- :meth:`QdrantStore.update_metadata` merges keys into payloads with ``set_payload``
  (one operation per distinct set of keys, batched), selecting the points by id and
  tenant: a filter, so ids not stored select nothing;
- point ids are UUID5 of ``tenant/id`` (of the bare ragcast id ``content_id:chunk_index``
  without a tenant): Qdrant takes only UUIDs or integers, and UUID5 keeps ids
  deterministic; the ragcast id is in the payload as ``id``, next to ``text`` and the
  metadata;
- payload indexes (server only: local mode has none): ``tenant`` as a keyword index with
  ``is_tenant`` (Qdrant ≥ 1.11 lays a tenant's points out together and plans its
  searches per tenant), ``content_id`` (keyword) and ``chunk_index`` (integer); those
  missing from a collection made by an earlier ragcast are added by
  :meth:`QdrantStore.ensure_collection`.
"""

from __future__ import annotations

import atexit
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ragcast.errors import ConfigurationError, ItemError, TransientError, ValidationError
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
    from qdrant_client import QdrantClient
    from qdrant_client import models as qm
    from qdrant_client.http.exceptions import ResponseHandlingException
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "the qdrant backend needs the 'qdrant' extra: pip install ragcast[qdrant]"
    ) from exc

if TYPE_CHECKING:
    from ragcast.settings import Settings

DENSE = "dense"
MULTI = "multi"
TENANT = "tenant"  # the payload field of a point's tenant
RESERVED = ("id", "text", TENANT)  # payload fields that are not the record's metadata
#: ragcast ids become UUID5 in this namespace (any fixed UUID would do; never change it)
ID_NAMESPACE = uuid.UUID("6f1c9a52-3d0e-5b7a-9c41-2a8e5d7f0b13")

# Local mode allows one client per folder (it locks the folder): share it per process,
# counting its users, and close what is left before the interpreter tears modules down.
# Local mode has no locking of its own, so each shared client comes with the lock that
# serialises its calls.
_LOCAL: dict[str, tuple[QdrantClient, threading.RLock, int]] = {}
_LOCAL_LOCK = threading.Lock()


@atexit.register
def _close_local() -> None:
    with _LOCAL_LOCK:
        for client, _, _ in _LOCAL.values():
            client.close()
        _LOCAL.clear()


def point_id(record_id: str, tenant: str | None = None) -> str:
    """The Qdrant point id of a tenant's ragcast id: a UUID5, stable across runs and
    machines (tenants never contain ``/``, so no two pairs share a name)."""
    return str(uuid.uuid5(ID_NAMESPACE, record_id if tenant is None else f"{tenant}/{record_id}"))


def _tenant_schema() -> qm.PayloadSchemaType | qm.KeywordIndexParams:
    """A keyword index flagged ``is_tenant``, where the client knows the flag."""
    if "is_tenant" in qm.KeywordIndexParams.model_fields:
        return qm.KeywordIndexParams(type=qm.KeywordIndexType.KEYWORD, is_tenant=True)
    return qm.PayloadSchemaType.KEYWORD  # pragma: no cover - qdrant-client < 1.11


def _indexes() -> dict[str, qm.PayloadSchemaType | qm.KeywordIndexParams]:
    return {
        TENANT: _tenant_schema(),
        "content_id": qm.PayloadSchemaType.KEYWORD,
        "chunk_index": qm.PayloadSchemaType.INTEGER,
    }


class QdrantStore(VectorStore):
    """Collections of named vectors in Qdrant; cosine similarity on ``dense``."""

    id = "qdrant"
    max_batch = 256  # a few MB a request at 1,024 dimensions with the chunk text
    supports_multi_vector = True

    def __init__(
        self, *, url: str | None = None, path: str | None = None, api_key: str | None = None
    ) -> None:
        self._path, self._local = path, not url
        self._lock = threading.RLock()
        if url:
            self._client = QdrantClient(url=url, api_key=api_key)
        elif path:
            with _LOCAL_LOCK:
                client, lock, users = _LOCAL.get(path) or (QdrantClient(path=path), self._lock, 0)
                _LOCAL[path] = (client, lock, users + 1)
            self._client, self._lock = client, lock
        else:
            raise ConfigurationError("qdrant needs RAGCAST_QDRANT_URL or RAGCAST_QDRANT_PATH")
        self._checked: dict[str, int] = {}
        self._multi: dict[str, int] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> QdrantStore:
        """A store on ``RAGCAST_QDRANT_URL``, else local mode on ``RAGCAST_QDRANT_PATH``."""
        return cls(
            url=settings.qdrant_url, path=settings.qdrant_path, api_key=settings.qdrant_api_key
        )

    def close(self) -> None:
        """Close the client (a shared local one when its last store closes)."""
        if not self._local:
            self._client.close()
            return
        with _LOCAL_LOCK:
            client, lock, users = _LOCAL.get(self._path or "", (None, self._lock, 0))
            if client is not self._client:
                return
            if users > 1:
                _LOCAL[self._path or ""] = (client, lock, users - 1)
                return
            del _LOCAL[self._path or ""]
        self._client.close()

    @contextmanager
    def _call(self) -> Iterator[None]:
        """Serialise local-mode calls; a server that cannot be reached is transient."""
        with self._lock if self._local else nullcontext():
            try:
                yield
            except ResponseHandlingException as exc:  # connection refused, timeouts
                raise TransientError(f"qdrant is unreachable: {exc}") from exc

    def ensure_collection(self, name: str, dimensions: int) -> None:
        """Create ``name`` with a ``dense`` vector of ``dimensions``, or check it."""
        if self._checked.get(name) == dimensions:
            return
        with self._call():
            if not self._client.collection_exists(name):
                self._create(name, dimensions)
            info = self._client.get_collection(name)
            if not self._local:
                self._ensure_indexes(name, set(info.payload_schema))
        vectors = info.config.params.vectors
        if not isinstance(vectors, dict) or DENSE not in vectors:
            raise ValidationError(
                "vector_db.id", f"qdrant collection {name} exists without a {DENSE!r} vector"
            )
        existing = vectors[DENSE].size
        if existing != dimensions:
            raise ValidationError(
                "embedding_model.dimensions",
                f"collection {name} holds {existing}-dimensional vectors, not {dimensions}",
            )
        if MULTI in vectors:
            self._multi[name] = vectors[MULTI].size
        self._checked[name] = dimensions

    def _create(self, name: str, dimensions: int) -> None:
        try:
            self._client.create_collection(
                name,
                vectors_config={
                    DENSE: qm.VectorParams(size=dimensions, distance=qm.Distance.COSINE)
                },
            )
        except Exception:
            if not self._client.collection_exists(name):  # another process won the race
                raise

    def _ensure_indexes(self, name: str, existing: set[str]) -> None:
        """Create the payload indexes ``name`` lacks (all of them when it is new)."""
        for key, schema in _indexes().items():
            if key not in existing:
                self._client.create_payload_index(name, key, field_schema=schema, wait=True)

    def _ensure_multi(self, name: str, width: int) -> None:
        existing = self._multi.get(name)
        if existing == width:
            return
        if existing is not None:
            raise ItemError(
                f"collection {name} holds {existing}-wide multi-vectors, not {width}-wide ones"
            )
        config = qm.DenseVectorNameConfig(
            dense=qm.DenseVectorConfig(
                size=width,
                distance=qm.Distance.COSINE,
                multivector_config=qm.MultiVectorConfig(
                    comparator=qm.MultiVectorComparator.MAX_SIM
                ),
            )
        )
        # Re-creating it with the same schema is a no-op (another worker may have won).
        self._client.create_vector_name(name, MULTI, config)
        self._multi[name] = width

    def upsert_batch(
        self, name: str, records: Sequence[VectorRecord], *, tenant: str | None = None
    ) -> None:
        """Upsert one batch; records with ``multi_vector`` also get the ``multi`` vector."""
        check_tenant(tenant)
        if not records:
            return
        points = []
        multi_width = 0
        for r in records:
            vectors: dict[str, Any] = {DENSE: _floats(r.vector)}
            if r.multi_vector is not None and len(r.multi_vector):
                multi = np.asarray(r.multi_vector, dtype=np.float32)
                multi_width = int(multi.shape[1])
                vectors[MULTI] = multi.tolist()
            payload = {k: v for k, v in r.metadata.items() if v is not None}
            payload.update(id=r.id, text=r.text)
            payload.pop(TENANT, None)
            if tenant is not None:
                payload[TENANT] = tenant
            pid = point_id(r.id, tenant)
            points.append(qm.PointStruct(id=pid, vector=vectors, payload=payload))
        with self._call():
            if multi_width:
                self._ensure_multi(name, multi_width)
            self._client.upsert(name, points=points, wait=True)

    def delete_stale(
        self, name: str, content_id: str, keep: int, *, tenant: str | None = None
    ) -> None:
        """Delete ``tenant``'s points of ``content_id`` with ``chunk_index >= keep``."""
        where = {"content_id": content_id, "chunk_index": {"$gte": keep}}
        selector = qm.FilterSelector(filter=_filter(where, check_tenant(tenant)))
        with self._call():
            if self._client.collection_exists(name):
                self._client.delete(name, points_selector=selector, wait=True)

    def update_metadata(
        self, name: str, values: Mapping[str, Mapping[str, object]], *, tenant: str | None = None
    ) -> None:
        """Merge ``values[id]`` into the payloads of ``tenant``'s points ``id``.

        Points given the same keys share one ``set_payload``; the operations go in
        ``batch_update_points`` requests of ``max_batch``. Each selects its points by a
        filter on their ids and the tenant (or its absence), as every call here does, so
        ids not stored match nothing. ``id``, ``text`` and ``tenant`` are not taken: they
        are the point's own fields.
        """
        check_tenant(tenant)
        groups: dict[str, tuple[dict[str, Any], list[qm.ExtendedPointId]]] = {}
        for rid, meta in values.items():
            payload = metadata_patch(meta, RESERVED)
            if payload:
                key = repr(sorted(payload.items()))
                groups.setdefault(key, (payload, []))[1].append(point_id(rid, tenant))
        ops = [
            qm.SetPayloadOperation(
                set_payload=qm.SetPayload(
                    payload=payload,
                    filter=qm.Filter(must=[_tenant(tenant), qm.HasIdCondition(has_id=ids)]),
                )
            )
            for payload, ids in groups.values()
        ]
        if not ops:
            return
        with self._call():
            if not self._client.collection_exists(name):
                return
            for start in range(0, len(ops), self.max_batch):
                self._client.batch_update_points(
                    name, ops[start : start + self.max_batch], wait=True
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
        """Nearest neighbours of ``tenant`` on the ``dense`` vector, filtered on the payload."""
        flt = _filter(where, check_tenant(tenant))
        if matches_nothing(conditions(where)):
            return []
        with self._call():
            if not self._client.collection_exists(name):
                return []
            res = self._client.query_points(
                name,
                query=_floats(vector),
                using=DENSE,
                limit=top_k,
                query_filter=flt,
                with_payload=True,
            )
        hits = []
        for p in res.points:
            payload = dict(p.payload or {})
            rid = str(payload.pop("id", p.id))
            text = str(payload.pop("text", ""))
            payload.pop(TENANT, None)
            hits.append(VectorHit(id=rid, score=float(p.score), text=text, metadata=payload))
        return hits

    def count(self, name: str, *, tenant: str | None = None) -> int:
        """Exact number of ``tenant``'s points in ``name`` (all of them without a tenant;
        0 when it does not exist)."""
        flt = None if check_tenant(tenant) is None else _filter(None, tenant)
        with self._call():
            if not self._client.collection_exists(name):
                return 0
            return int(self._client.count(name, count_filter=flt, exact=True).count)

    def drop_collection(self, name: str) -> None:
        """Delete ``name`` and every tenant's points in it."""
        with self._call():
            if self._client.collection_exists(name):
                self._client.delete_collection(name)
        self._checked.pop(name, None)
        self._multi.pop(name, None)


def _floats(vector: Sequence[float] | npt.NDArray[np.float32]) -> list[float]:
    return np.asarray(vector, dtype=np.float32).tolist()  # type: ignore[no-any-return]


def _filter(where: dict[str, Any] | None, tenant: str | None) -> qm.Filter:
    """``where`` in Qdrant's terms, and the tenant (or its absence) as a ``must``."""
    must: list[qm.Condition] = [_tenant(tenant)]
    must.extend(_condition(c) for c in conditions(where))
    return qm.Filter(must=must)


def _tenant(tenant: str | None) -> qm.Condition:
    """The points of ``tenant``: those with it in ``tenant``, or without the field."""
    if tenant is None:
        return qm.IsEmptyCondition(is_empty=qm.PayloadField(key=TENANT))
    return qm.FieldCondition(key=TENANT, match=qm.MatchValue(value=tenant))


def _condition(c: Condition) -> qm.FieldCondition:
    if c.kind == "in":
        return qm.FieldCondition(key=c.key, match=qm.MatchAny(any=list(c.values)))
    if c.kind == "range":
        return qm.FieldCondition(key=c.key, range=qm.Range(gte=c.gte, lte=c.lte))
    # equality, and ``contains``: a value matches an array payload holding it
    return qm.FieldCondition(key=c.key, match=qm.MatchValue(value=c.value))
