"""The vector store contract: one collection per embedding model, shared by tenants.

A record upserted with ``tenant="u17"`` is seen only by calls that name the same
tenant; the same record id under two tenants is two records, and hits carry the record
ids as given. ``tenant=None`` is a space of its own: the records written without a
tenant, every record of releases before tenants among them. Only
:meth:`VectorStore.count` reads ``tenant=None`` as the whole collection.

:meth:`VectorStore.update_metadata` merges keys into stored records' metadata (a
speaker label set after the fact), leaving their vectors and text as they are.

``where`` filters on metadata, keys ANDed, each one of::

    {"k": value}                     # equality
    {"k": {"$in": [v1, v2]}}         # any of
    {"k": {"$gte": a, "$lte": b}}    # numeric range, either bound or both
    {"k": {"$contains": v}}          # a list-valued key holding v
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from ragcast.settings import Settings

#: what a tenant may look like: short, and without the ``/`` that stores join it with
TENANT_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
RANGE_OPS = frozenset({"$gte", "$lte"})


@dataclass(slots=True)
class VectorRecord:
    """One chunk's vector with its id (``content_id:chunk_index``) and metadata."""

    id: str
    vector: Sequence[float] | npt.NDArray[np.float32]
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    #: per-token vectors (n x dimensions) of a multi-vector embedding, where asked for
    multi_vector: npt.NDArray[np.float32] | None = None


@dataclass(slots=True)
class VectorHit:
    """A query result: cosine similarity ``score`` (1 is identical)."""

    id: str
    score: float
    text: str
    metadata: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Condition:
    """One key of a ``where`` filter: ``eq`` (``value``), ``in`` (``values``),
    ``range`` (``gte`` and/or ``lte``) or ``contains`` (a list holding ``value``)."""

    key: str
    kind: Literal["eq", "in", "range", "contains"]
    value: Any = None
    values: tuple[Any, ...] = ()
    gte: float | None = None
    lte: float | None = None


def conditions(where: dict[str, Any] | None) -> list[Condition]:
    """``where`` parsed into one :class:`Condition` per key.

    Raises :class:`ValueError` for operators outside the contract.
    """
    out: list[Condition] = []
    for key, spec in (where or {}).items():
        if not isinstance(spec, dict):
            out.append(Condition(key, "eq", value=spec))
        elif set(spec) == {"$in"}:
            out.append(Condition(key, "in", values=tuple(spec["$in"])))
        elif set(spec) == {"$contains"}:
            out.append(Condition(key, "contains", value=spec["$contains"]))
        elif spec and set(spec) <= RANGE_OPS:
            out.append(Condition(key, "range", gte=spec.get("$gte"), lte=spec.get("$lte")))
        else:
            raise ValueError(f"unsupported filter on {key!r}: {spec!r}")
    return out


def matches_nothing(conds: Sequence[Condition]) -> bool:
    """Whether no record can pass ``conds`` (an empty ``$in``), so that a store need not
    be asked (some refuse an empty list)."""
    return any(c.kind == "in" and not c.values for c in conds)


def metadata_patch(values: Mapping[str, object], reserved: Collection[str] = ()) -> dict[str, Any]:
    """One record's :meth:`VectorStore.update_metadata` keys as a store writes them:
    without None values (no store keeps them, as in ``upsert``) and without the keys
    in ``reserved``, those the store keeps for itself (a record's tenant or text)."""
    return {k: v for k, v in values.items() if v is not None and k not in reserved}


def check_tenant(tenant: str | None) -> str | None:
    """``tenant`` itself, once checked against :data:`TENANT_RE` (None passes)."""
    if tenant is not None and not TENANT_RE.fullmatch(tenant):
        raise ValueError(f"invalid tenant {tenant!r}: expected {TENANT_RE.pattern}")
    return tenant


class VectorStore(ABC):
    """A vector database holding one collection per embedding model, shared by tenants."""

    id: str = "store"
    max_batch: int = 1000
    #: whether records' ``multi_vector`` can be stored and searched (late interaction)
    supports_multi_vector: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> VectorStore:
        """Build the store from the server settings (plugins)."""
        raise NotImplementedError

    @abstractmethod
    def ensure_collection(self, name: str, dimensions: int) -> None:
        """Create ``name`` for cosine vectors of ``dimensions``, or check an existing one.

        Raises :class:`ragcast.errors.ValidationError` when it exists with other dimensions.
        """

    @abstractmethod
    def upsert_batch(
        self, name: str, records: Sequence[VectorRecord], *, tenant: str | None = None
    ) -> None:
        """Insert or overwrite ``records`` (at most ``max_batch``) of ``tenant``."""

    @abstractmethod
    def delete_stale(
        self, name: str, content_id: str, keep: int, *, tenant: str | None = None
    ) -> None:
        """Delete ``tenant``'s chunks of ``content_id`` whose index is ``keep`` or more."""

    @abstractmethod
    def query(
        self,
        name: str,
        vector: Sequence[float],
        top_k: int,
        where: dict[str, Any] | None = None,
        *,
        tenant: str | None = None,
    ) -> list[VectorHit]:
        """The ``top_k`` nearest records of ``tenant``, optionally filtered (``where``)."""

    @abstractmethod
    def count(self, name: str, *, tenant: str | None = None) -> int:
        """How many vectors ``tenant`` has in ``name``; all of them for ``tenant=None``
        (0 when it does not exist)."""

    @abstractmethod
    def update_metadata(
        self, name: str, values: Mapping[str, Mapping[str, object]], *, tenant: str | None = None
    ) -> None:
        """Merge ``values[id]`` into the metadata of each of ``tenant``'s records ``id``;
        vectors and text are left as they are, ids not stored are skipped.

        Keys take their new values and keys not named keep theirs; a None value leaves a
        key as it is (stores keep no None). Another tenant's record of the same id never
        changes, and a collection that does not exist is nothing to update.
        """

    @abstractmethod
    def drop_collection(self, name: str) -> None:
        """Delete ``name`` with every tenant's records (nothing when it does not exist)."""

    def upsert(
        self, name: str, records: Sequence[VectorRecord], *, tenant: str | None = None
    ) -> None:
        """Upsert any number of records in batches of ``max_batch``."""
        for start in range(0, len(records), self.max_batch):
            self.upsert_batch(name, records[start : start + self.max_batch], tenant=tenant)
