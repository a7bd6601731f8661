"""Chroma: persistent on disk (the default) or a Chroma server by URL.

Tenants share a collection: a tenant's records carry it in the metadata key ``tenant``,
and their ids are stored as ``tenant/id`` so that two tenants' ``doc:0`` stay two
records (the prefix is taken off the ids that come back). Records written without a
tenant have no ``tenant`` key, as every record had before tenants, so collections of
earlier releases are the space without a tenant as they stand.

Chroma answers a filtered query by listing every record that passes the filter, then
searching HNSW with that list as an allow-list: the listing costs time in proportion to
the tenant's size, and a short allow-list makes the HNSW walk visit most of the graph.
So :meth:`ChromaStore.query` plans its search itself:

1. unfiltered HNSW searches of a few times ``top_k``, filtered here; enough for a
   tenant that holds a good part of the collection (widened, up to :data:`FETCH_MAX`,
   while the share of matches found says a wider search would do);
2. else, for a filter that matches at most :data:`BRUTE_MAX` records, those records
   themselves, compared exactly (listed by the other conditions alone first, where
   there are any: a content id narrows faster than a big tenant);
3. else, Chroma's filtered search (Chroma cannot filter on a missing key, so for the
   space without a tenant it filters on the other conditions and leaves out tenants'
   records here, searching wider while that leaves too few).

With 110,100 records of 512 dimensions, a query of a tenant of 100,000 of them took
289 ms through Chroma's filtered search, one of a tenant of 100 took 98 ms, and an
unfiltered one 3 to 4 ms; planned, the two tenants' take 4 ms and 21 ms.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import numpy.typing as npt

from ragcast.errors import ValidationError
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

TENANT = "tenant"  # the metadata key of a record's tenant
FETCH_FACTOR = 4  # an unfiltered search first fetches this many times top_k …
FETCH_MIN = 40  # … and at least this many
FETCH_MAX = 1000  # the widest unfiltered search before filtering in Chroma
BRUTE_MAX = 500  # filters matching at most this many records are searched exactly
INCLUDE = ["documents", "metadatas", "distances"]


class ChromaStore(VectorStore):
    """Chroma collections with cosine space; dimensions are recorded in their metadata."""

    id = "chroma"

    def __init__(self, *, path: Path | None = None, url: str | None = None) -> None:
        import chromadb
        from chromadb.config import Settings

        settings = Settings(anonymized_telemetry=False, allow_reset=False)
        if url:
            parsed = urlparse(url)
            self._client: Any = chromadb.HttpClient(
                host=parsed.hostname or "localhost",
                port=parsed.port or 8000,
                ssl=parsed.scheme == "https",
                settings=settings,
            )
        else:
            assert path is not None
            path.mkdir(parents=True, exist_ok=True)
            self._client = chromadb.PersistentClient(path=str(path), settings=settings)
        # On disk, Chroma's own cap per call (5461 on SQLite): fewer, larger calls write
        # faster. Over HTTP, 1000 keeps each request body to a few MB.
        cap = int(self._client.get_max_batch_size())
        self.max_batch = min(1000, cap) if url else cap
        self._collections: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _get(self, name: str) -> Any:
        col = self._collections.get(name)
        if col is None:
            col = self._client.get_collection(name, embedding_function=None)
            self._collections[name] = col
        return col

    def _find(self, name: str) -> Any | None:
        """The collection, or None when it does not exist."""
        try:
            return self._get(name)
        except Exception:  # chroma raises NotFoundError/ValueError by version
            return None

    def ensure_collection(self, name: str, dimensions: int) -> None:
        """Create or check ``name``."""
        with self._lock:
            col = self._client.get_or_create_collection(
                name,
                metadata={"hnsw:space": "cosine", "dimensions": dimensions},
                embedding_function=None,
            )
            existing = (col.metadata or {}).get("dimensions")
            if existing is not None and int(existing) != dimensions:
                raise ValidationError(
                    "embedding_model.dimensions",
                    f"collection {name} holds {existing}-dimensional vectors, not {dimensions}",
                )
            self._collections[name] = col

    def upsert_batch(
        self, name: str, records: Sequence[VectorRecord], *, tenant: str | None = None
    ) -> None:
        """Upsert one batch of ``tenant``'s records."""
        check_tenant(tenant)
        if not records:
            return
        self._get(name).upsert(
            ids=[stored_id(r.id, tenant) for r in records],
            embeddings=np.stack([np.asarray(r.vector, dtype=np.float32) for r in records]),
            documents=[r.text for r in records],
            metadatas=[_metadata(r.metadata, tenant) for r in records],
        )

    def delete_stale(
        self, name: str, content_id: str, keep: int, *, tenant: str | None = None
    ) -> None:
        """Delete ``tenant``'s chunks of ``content_id`` with ``chunk_index >= keep``.

        The chunks are listed by content id alone and picked by tenant here: a filter on
        the tenant would have Chroma list all of the tenant's records.
        """
        check_tenant(tenant)
        col = self._find(name)
        if col is None:
            return
        where = {"$and": [{"content_id": content_id}, {"chunk_index": {"$gte": keep}}]}
        got = col.get(where=where, include=["metadatas"])
        stale = [
            id_
            for id_, meta in zip(got["ids"], got["metadatas"], strict=True)
            if _owned(dict(meta or {}), tenant)
        ]
        if stale:
            col.delete(ids=stale)

    def update_metadata(
        self, name: str, values: Mapping[str, Mapping[str, object]], *, tenant: str | None = None
    ) -> None:
        """Merge ``values[id]`` into the metadata of ``tenant``'s records ``id``.

        The records are read first, in batches of ``max_batch``: the merge is made here
        (whether a Chroma replaces or merges metadata on ``update``), only the tenant's
        records are written, and ids not stored are never sent. A ``tenant`` key is not
        taken: it would move the record to another tenant.
        """
        check_tenant(tenant)
        patches = {
            stored_id(rid, tenant): patch
            for rid, meta in values.items()
            if (patch := metadata_patch(meta, (TENANT,)))
        }
        col = self._find(name) if patches else None
        if col is None:
            return
        ids = list(patches)
        for start in range(0, len(ids), self.max_batch):
            got = col.get(ids=ids[start : start + self.max_batch], include=["metadatas"])
            owned = [
                (id_, dict(meta or {}))
                for id_, meta in zip(got["ids"], got["metadatas"], strict=True)
                if _owned(dict(meta or {}), tenant)
            ]
            if owned:
                col.update(
                    ids=[id_ for id_, _ in owned],
                    metadatas=[{**meta, **patches[id_]} for id_, meta in owned],
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
        """Nearest neighbours of ``tenant`` by cosine distance (planned as the module
        says)."""
        plan = Plan(check_tenant(tenant), conditions(where), top_k)
        col = self._find(name)
        if col is None or top_k < 1 or matches_nothing(plan.conds):
            return []
        q = np.asarray(vector, dtype=np.float32)
        hits = self._post_filtered(col, q, plan)
        if hits is None:
            hits = self._exact(col, q, plan)
        if hits is None:
            hits = self._filtered(col, q, plan)
        return hits[:top_k]

    def _post_filtered(
        self, col: Any, q: npt.NDArray[np.float32], plan: Plan
    ) -> list[VectorHit] | None:
        """The answer from unfiltered searches filtered here, or None when too few of
        the nearest records pass the filter."""
        k = plan.top_k
        n = min(max(FETCH_FACTOR * k, FETCH_MIN), max(FETCH_MAX, k))
        while True:
            hits, complete = _search(col, q, n, None, plan)
            if len(hits) >= k or complete:
                return hits
            # The share of matches so far tells how wide a search would find top_k.
            wider = math.ceil(2 * k * n / len(hits)) if hits else FETCH_MAX + 1
            if wider > FETCH_MAX:
                return None
            n = wider

    def _exact(self, col: Any, q: npt.NDArray[np.float32], plan: Plan) -> list[VectorHit] | None:
        """Exact cosine search over the records that pass the filter, or None when more
        than :data:`BRUTE_MAX` do.

        The other conditions are tried first without the tenant's: Chroma lists every
        record of the tenant to apply that one, which a narrow filter (a content id)
        makes needless.
        """
        subsets: list[dict[str, Any] | None] = [_chroma(plan.conds)] if plan.conds else []
        if plan.tenant is not None:
            subsets.append(_chroma([*plan.conds, plan.tenant_condition]))
        for where in subsets or [None]:
            got = col.get(
                where=where,
                limit=BRUTE_MAX + 1,
                include=["embeddings", "documents", "metadatas"],
            )
            if len(got["ids"]) <= BRUTE_MAX:
                return _ranked(got, q, plan)
        return None

    def _filtered(self, col: Any, q: npt.NDArray[np.float32], plan: Plan) -> list[VectorHit]:
        """Chroma's filtered search; without a tenant, repeated wider while tenants'
        records crowd out the rest."""
        conds = plan.conds if plan.tenant is None else [*plan.conds, plan.tenant_condition]
        where = _chroma(conds) if conds else None
        n = plan.top_k if where is not None else 4 * FETCH_MAX  # step 1 went that far
        while True:
            hits, complete = _search(col, q, n, where, plan)
            if len(hits) >= plan.top_k or complete:
                return hits
            n *= 4

    def count(self, name: str, *, tenant: str | None = None) -> int:
        """Number of ``tenant``'s vectors in ``name``: all of them for ``tenant=None``
        (0 when it does not exist)."""
        col = self._find(name)
        if col is None:
            return 0
        if check_tenant(tenant) is None:
            return int(col.count())
        return len(col.get(where={TENANT: tenant}, include=[])["ids"])

    def drop_collection(self, name: str) -> None:
        """Delete ``name`` with every tenant's records."""
        with self._lock:
            self._collections.pop(name, None)
            if self._find(name) is not None:
                self._client.delete_collection(name)
            self._collections.pop(name, None)


def stored_id(record_id: str, tenant: str | None) -> str:
    """The Chroma id of a tenant's record: ``tenant/id`` (the bare id without one)."""
    return record_id if tenant is None else f"{tenant}/{record_id}"


@dataclass(frozen=True, slots=True)
class Plan:
    """What a query asks: its tenant, its other conditions, how many hits."""

    tenant: str | None
    conds: list[Condition]
    top_k: int

    @property
    def tenant_condition(self) -> Condition:
        return Condition(TENANT, "eq", value=self.tenant)

    def passes(self, meta: dict[str, Any]) -> bool:
        """Whether a record's metadata passes, as Chroma would judge."""
        return _owned(meta, self.tenant) and all(_holds(meta, c) for c in self.conds)


def _metadata(meta: dict[str, Any], tenant: str | None) -> dict[str, Any]:
    # Chroma rejects None values in metadata.
    out = {k: v for k, v in meta.items() if v is not None and k != TENANT}
    if tenant is not None:
        out[TENANT] = tenant
    return out


def _owned(meta: dict[str, Any], tenant: str | None) -> bool:
    """Whether a record's metadata puts it in ``tenant``'s space."""
    return TENANT not in meta if tenant is None else meta.get(TENANT) == tenant


def _search(
    col: Any, q: npt.NDArray[np.float32], n: int, where: dict[str, Any] | None, plan: Plan
) -> tuple[list[VectorHit], bool]:
    """The hits among Chroma's ``n`` nearest that pass the plan, and whether those were
    all the records Chroma had."""
    res = col.query(query_embeddings=[q], n_results=n, where=where, include=INCLUDE)
    rows = _rows(res)
    return [_hit(*row) for row in rows if plan.passes(row[3])], len(rows) < n


Row = tuple[str, float, str | None, dict[str, Any]]  # stored id, score, text, metadata


def _rows(res: dict[str, Any]) -> list[Row]:
    """The rows of a one-vector query's answer."""
    return [
        (id_, 1.0 - float(dist), doc, dict(meta or {}))
        for id_, doc, meta, dist in zip(
            res["ids"][0],
            res["documents"][0],
            res["metadatas"][0],
            res["distances"][0],
            strict=True,
        )
    ]


def _hit(stored: str, score: float, text: str | None, meta: dict[str, Any] | None) -> VectorHit:
    """A row as a hit: the bare record id, the metadata without the tenant."""
    metadata = dict(meta or {})
    tenant = metadata.pop(TENANT, None)
    rid = stored[len(tenant) + 1 :] if isinstance(tenant, str) else stored
    return VectorHit(id=rid, score=score, text=text or "", metadata=metadata)


def _ranked(got: dict[str, Any], q: npt.NDArray[np.float32], plan: Plan) -> list[VectorHit]:
    """The best records of a ``get`` answer that pass the plan, by exact cosine."""
    keep = [i for i, meta in enumerate(got["metadatas"]) if plan.passes(dict(meta or {}))]
    if not keep:
        return []
    vectors = np.asarray([got["embeddings"][i] for i in keep], dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1) * (float(np.linalg.norm(q)) or 1.0)
    scores = (vectors @ q) / np.where(norms == 0, 1.0, norms)
    order = np.argsort(-scores, kind="stable")[: plan.top_k]
    return [
        _hit(
            got["ids"][keep[j]],
            float(scores[j]),
            got["documents"][keep[j]],
            got["metadatas"][keep[j]],
        )
        for j in order
    ]


def _chroma(conds: list[Condition]) -> dict[str, Any]:
    """Conditions in Chroma's where language (one operator per clause)."""
    clauses: list[dict[str, Any]] = []
    for c in conds:
        if c.kind == "eq":
            clauses.append({c.key: c.value})
        elif c.kind == "in":
            clauses.append({c.key: {"$in": list(c.values)}})
        elif c.kind == "contains":
            clauses.append({c.key: {"$contains": c.value}})
        else:
            bounds = (("$gte", c.gte), ("$lte", c.lte))
            clauses.extend({c.key: {op: b}} for op, b in bounds if b is not None)
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def _holds(meta: dict[str, Any], c: Condition) -> bool:
    if c.key not in meta:
        return False
    value = meta[c.key]
    if c.kind == "eq":
        return _same(value, c.value)
    if c.kind == "in":
        return any(_same(value, v) for v in c.values)
    if c.kind == "contains":
        return isinstance(value, list) and any(_same(v, c.value) for v in value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return (c.gte is None or value >= c.gte) and (c.lte is None or value <= c.lte)


def _same(a: Any, b: Any) -> bool:
    # Chroma keeps booleans apart from numbers: True does not equal 1.
    return isinstance(a, bool) == isinstance(b, bool) and bool(a == b)
