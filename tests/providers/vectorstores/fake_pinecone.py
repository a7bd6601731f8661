"""A local Pinecone index: the data-plane REST API over real HTTP, with Pinecone's limits.

Implements ``POST /vectors/upsert``, ``POST /vectors/update``, ``POST /query``,
``POST /vectors/delete``, ``POST /describe_index_stats``, ``GET /vectors/fetch`` and
``GET /vectors/list`` of a serverless, dense, cosine index, and answers as Pinecone does
(``{"code", "message", "details"}`` bodies) when a request breaks a documented limit:

- at most 1,000 vectors per upsert, fetch or delete request;
- at most 2 MB per request (read strictly: 2,000,000 bytes of body);
- at most 40 KB (40,960 bytes of compact JSON) of metadata per vector, no null values;
- ids of 1 to 512 characters; values of exactly the index's dimension;
- no delete by metadata filter (serverless indexes refuse it); ``topK`` ≤ 10,000;
  list pages of at most 100 ids;
- an update names one ``id`` or a ``filter`` (that one with metadata only):
  ``setMetadata`` merges into the stored metadata (keys not named stay), ``values``
  replace the vector, and an id not stored is answered ``200`` with nothing changed;
  the merged metadata must keep within the limit.

Every request is recorded in :attr:`FakePinecone.requests` (and accepted upserts in
:attr:`FakePinecone.upserts`) so tests can check what the client sent.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

MAX_VECTORS = 1000
MAX_REQUEST_BYTES = 2_000_000
MAX_METADATA_BYTES = 40 * 1024
MAX_ID_LENGTH = 512
MAX_TOP_K = 10_000
MAX_LIST_LIMIT = 100


class PineconeFault(Exception):
    """An error answered in Pinecone's shape."""

    def __init__(self, status: int, message: str, code: int = 3) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


@dataclass
class Stored:
    """One vector as the index keeps it."""

    values: np.ndarray[Any, np.dtype[np.float32]]
    metadata: dict[str, Any] | None


@dataclass
class FakePinecone:
    """The state of one index and the app that serves it."""

    dimension: int
    api_key: str = "test-pinecone-key"
    namespaces: dict[str, dict[str, Stored]] = field(default_factory=dict)
    #: (path, body bytes) of every request, and (vectors, body bytes) of accepted upserts
    requests: list[tuple[str, int]] = field(default_factory=list)
    upserts: list[tuple[int, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> Starlette:
        """The Starlette app of this index."""
        routes = [
            Route("/vectors/upsert", self._wrap(self.upsert), methods=["POST"]),
            Route("/vectors/update", self._wrap(self.update), methods=["POST"]),
            Route("/query", self._wrap(self.query), methods=["POST"]),
            Route("/vectors/delete", self._wrap(self.delete), methods=["POST"]),
            Route("/describe_index_stats", self._wrap(self.stats), methods=["POST", "GET"]),
            Route("/vectors/fetch", self._wrap(self.fetch), methods=["GET"]),
            Route("/vectors/list", self._wrap(self.list_ids), methods=["GET"]),
        ]
        return Starlette(routes=routes)

    def _wrap(self, handler: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            body = await request.body()
            self.requests.append((request.url.path, len(body)))
            try:
                if request.headers.get("api-key") != self.api_key:
                    raise PineconeFault(401, "Invalid API Key", code=16)
                if len(body) > MAX_REQUEST_BYTES:
                    mb = len(body) / 1_000_000
                    raise PineconeFault(
                        400, f"Request size {mb:.1f}MB exceeds the maximum supported size of 2MB"
                    )
                data = json.loads(body) if body else {}
                with self.lock:
                    answer = handler(data, request)
                    if request.url.path == "/vectors/upsert":
                        self.upserts.append((answer["upsertedCount"], len(body)))
                    return JSONResponse(answer)
            except PineconeFault as fault:
                return JSONResponse(
                    {"code": fault.code, "message": fault.message, "details": []},
                    status_code=fault.status,
                )

        return endpoint

    # -- operations ---------------------------------------------------------------------
    def upsert(self, data: dict[str, Any], request: Request) -> dict[str, Any]:
        """``POST /vectors/upsert``."""
        vectors = data.get("vectors") or []
        if len(vectors) > MAX_VECTORS:
            raise PineconeFault(
                400, f"Batch size {len(vectors)} exceeds the maximum of {MAX_VECTORS} vectors"
            )
        checked = [self._check_vector(v) for v in vectors]
        ns = self.namespaces.setdefault(data.get("namespace") or "", {})
        for vid, stored in checked:
            ns[vid] = stored
        return {"upsertedCount": len(checked)}

    def _check_vector(self, v: dict[str, Any]) -> tuple[str, Stored]:
        vid = _check_id(v.get("id"))
        values = self._check_values(v.get("values"))
        meta = v.get("metadata")
        if meta is not None:
            _check_metadata(meta)
        return vid, Stored(values, meta)

    def _check_values(self, raw: Any) -> np.ndarray[Any, np.dtype[np.float32]]:
        values = np.asarray(raw or [], dtype=np.float32)
        if len(values) != self.dimension:
            raise PineconeFault(
                400,
                f"Vector dimension {len(values)} does not match the dimension of the index "
                f"{self.dimension}",
            )
        if not values.any():
            raise PineconeFault(400, "Dense vectors must contain at least one non-zero value")
        return values

    def update(self, data: dict[str, Any], request: Request) -> dict[str, Any]:
        """``POST /vectors/update`` of one ``id`` (``values`` and/or ``setMetadata``) or of
        the records passing a ``filter`` (``setMetadata`` only; ``dryRun`` just counts
        them). ``setMetadata`` merges into the metadata; an id not stored changes nothing
        and is answered ``200`` all the same, as Pinecone does."""
        vid, flt, patch = data.get("id"), data.get("filter"), data.get("setMetadata")
        if (vid is None) == (flt is None):
            raise PineconeFault(400, "Exactly one of id or filter must be provided")
        if patch is not None and not isinstance(patch, dict):
            raise PineconeFault(400, "setMetadata must be an object")
        ns = self.namespaces.get(data.get("namespace") or "", {})
        if flt is not None:
            return self._update_by_filter(ns, flt, patch, data)
        stored = ns.get(_check_id(vid))
        values = None if data.get("values") is None else self._check_values(data["values"])
        merged = _merged(stored.metadata if stored else None, patch)
        if stored is not None:
            stored.values = stored.values if values is None else values
            stored.metadata = merged
        return {}

    def _update_by_filter(
        self,
        ns: dict[str, Stored],
        flt: Any,
        patch: dict[str, Any] | None,
        data: dict[str, Any],
    ) -> dict[str, Any]:
        if "values" in data or "sparseValues" in data:
            raise PineconeFault(400, "Vector values cannot be updated by metadata filter")
        if not isinstance(flt, dict) or not flt:
            raise PineconeFault(400, "The filter of an update must have at least one condition")
        matched = [s for s in ns.values() if _matches(s.metadata or {}, flt)]
        merged = [_merged(s.metadata, patch) for s in matched]  # all checked before any write
        if not data.get("dryRun"):
            for stored, meta in zip(matched, merged, strict=True):
                stored.metadata = meta
        return {"matchedRecords": len(matched)}

    def query(self, data: dict[str, Any], request: Request) -> dict[str, Any]:
        """``POST /query`` by vector, cosine similarity."""
        top_k = int(data.get("topK", 0))
        if not 1 <= top_k <= MAX_TOP_K:
            raise PineconeFault(400, f"topK must be between 1 and {MAX_TOP_K}")
        q = np.asarray(data.get("vector") or [], dtype=np.float32)
        if len(q) != self.dimension:
            raise PineconeFault(
                400,
                f"Query vector dimension {len(q)} does not match the dimension of the index "
                f"{self.dimension}",
            )
        namespace = data.get("namespace") or ""
        flt = data.get("filter")
        scored = []
        for vid, stored in self.namespaces.get(namespace, {}).items():
            if flt and not _matches(stored.metadata or {}, flt):
                continue
            denom = float(np.linalg.norm(q) * np.linalg.norm(stored.values)) or 1.0
            scored.append((float(q @ stored.values) / denom, vid, stored))
        scored.sort(key=lambda t: (-t[0], t[1]))
        matches = []
        for score, vid, stored in scored[:top_k]:
            match: dict[str, Any] = {"id": vid, "score": score, "values": []}
            if data.get("includeValues"):
                match["values"] = stored.values.tolist()
            if data.get("includeMetadata") and stored.metadata is not None:
                match["metadata"] = _as_pinecone_returns(stored.metadata)
            matches.append(match)
        return {"matches": matches, "namespace": namespace, "usage": {"readUnits": 1}}

    def delete(self, data: dict[str, Any], request: Request) -> dict[str, Any]:
        """``POST /vectors/delete`` by ids or all; filters are refused (serverless)."""
        if data.get("filter"):
            raise PineconeFault(
                400,
                "Serverless and Starter indexes do not support deleting with metadata filtering",
            )
        ns_name = data.get("namespace") or ""
        if data.get("deleteAll"):
            self.namespaces.pop(ns_name, None)
            return {}
        ids = data.get("ids") or []
        if len(ids) > MAX_VECTORS:
            raise PineconeFault(400, f"Cannot delete more than {MAX_VECTORS} ids per request")
        ns = self.namespaces.get(ns_name, {})
        for vid in ids:
            ns.pop(vid, None)
        if not ns:
            self.namespaces.pop(ns_name, None)
        return {}

    def stats(self, data: dict[str, Any], request: Request) -> dict[str, Any]:
        """``POST /describe_index_stats``: namespaces with vectors only, as Pinecone does."""
        namespaces = {n: {"vectorCount": len(v)} for n, v in self.namespaces.items() if v}
        return {
            "namespaces": namespaces,
            "dimension": self.dimension,
            "indexFullness": 0.0,
            "totalVectorCount": sum(len(v) for v in self.namespaces.values()),
            "metric": "cosine",
            "vectorType": "dense",
        }

    def fetch(self, data: dict[str, Any], request: Request) -> dict[str, Any]:
        """``GET /vectors/fetch?ids=…&namespace=…``."""
        ids = request.query_params.getlist("ids")
        if len(ids) > MAX_VECTORS:
            raise PineconeFault(400, f"Cannot fetch more than {MAX_VECTORS} ids per request")
        namespace = request.query_params.get("namespace") or ""
        ns = self.namespaces.get(namespace, {})
        vectors = {
            vid: {"id": vid, "values": ns[vid].values.tolist(), "metadata": ns[vid].metadata}
            for vid in ids
            if vid in ns
        }
        return {"vectors": vectors, "namespace": namespace, "usage": {"readUnits": 1}}

    def list_ids(self, data: dict[str, Any], request: Request) -> dict[str, Any]:
        """``GET /vectors/list``: ids by prefix, sorted, paginated with an opaque token."""
        params = request.query_params
        limit = int(params.get("limit") or MAX_LIST_LIMIT)
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise PineconeFault(400, f"limit must be between 1 and {MAX_LIST_LIMIT}")
        namespace = params.get("namespace") or ""
        prefix = params.get("prefix") or ""
        after = params.get("paginationToken")
        start = base64.urlsafe_b64decode(after).decode() if after else None
        ids = sorted(
            vid
            for vid in self.namespaces.get(namespace, {})
            if vid.startswith(prefix) and (start is None or vid > start)
        )
        page = ids[:limit]
        out: dict[str, Any] = {
            "vectors": [{"id": vid} for vid in page],
            "namespace": namespace,
            "usage": {"readUnits": 1},
        }
        if len(ids) > limit:
            out["pagination"] = {"next": base64.urlsafe_b64encode(page[-1].encode()).decode()}
        return out

    def count(self, namespace: str) -> int:
        """Vectors stored in ``namespace``."""
        return len(self.namespaces.get(namespace, {}))


def _check_id(vid: Any) -> str:
    if not isinstance(vid, str) or not 1 <= len(vid) <= MAX_ID_LENGTH:
        raise PineconeFault(400, f"Vector ID must be 1 to {MAX_ID_LENGTH} characters long")
    return vid


def _check_metadata(meta: dict[str, Any]) -> None:
    size = len(json.dumps(meta, ensure_ascii=False, separators=(",", ":")).encode())
    if size > MAX_METADATA_BYTES:
        raise PineconeFault(
            400,
            f"Metadata size is {size} bytes, which exceeds the limit of "
            f"{MAX_METADATA_BYTES} bytes per vector",
        )
    for key, value in meta.items():
        if not _valid_meta(value):
            raise PineconeFault(
                400,
                f"Metadata value must be a string, number, boolean or list of strings, "
                f"got '{json.dumps(value)}' for field '{key}'",
            )


def _merged(meta: dict[str, Any] | None, patch: dict[str, Any] | None) -> dict[str, Any] | None:
    """``meta`` with ``patch`` merged in (its keys set, the others kept), checked."""
    if patch is None:
        return meta
    merged = {**(meta or {}), **patch}
    _check_metadata(merged)
    return merged


def _valid_meta(value: Any) -> bool:
    if isinstance(value, str | bool | int | float):
        return True
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _as_pinecone_returns(meta: dict[str, Any]) -> dict[str, Any]:
    # Pinecone keeps numbers as doubles: an integer comes back as 3.0.
    return {
        k: float(v) if isinstance(v, int) and not isinstance(v, bool) else v
        for k, v in meta.items()
    }


def _matches(meta: dict[str, Any], flt: dict[str, Any]) -> bool:
    """Pinecone's filter language: ``$and``/``$or`` and comparison operators per field."""
    for key, cond in flt.items():
        if key == "$and":
            if not all(_matches(meta, f) for f in cond):
                return False
        elif key == "$or":
            if not any(_matches(meta, f) for f in cond):
                return False
        else:
            ops = cond if isinstance(cond, dict) else {"$eq": cond}
            if not all(_compare(meta.get(key), op, arg, key in meta) for op, arg in ops.items()):
                return False
    return True


def _compare(value: Any, op: str, arg: Any, present: bool) -> bool:
    values = value if isinstance(value, list) else [value]
    if op == "$eq":
        return present and arg in values
    if op == "$ne":
        return not present or arg not in values
    if op == "$in":
        return present and any(v in arg for v in values)
    if op == "$nin":
        return not present or all(v not in arg for v in values)
    if op == "$exists":
        return present is bool(arg)
    if op in ("$gt", "$gte", "$lt", "$lte"):
        if not present or isinstance(value, str | list | bool):
            return False
        return {
            "$gt": value > arg,
            "$gte": value >= arg,
            "$lt": value < arg,
            "$lte": value <= arg,
        }[op]
    raise PineconeFault(400, f"Unsupported filter operator: {op}")


@contextmanager
def serve(index: FakePinecone) -> Iterator[str]:
    """Serve ``index`` on a free loopback port; yields its host URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(index.app(), log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the fake Pinecone server did not start")
        threading.Event().wait(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
