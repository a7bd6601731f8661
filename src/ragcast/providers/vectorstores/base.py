"""The vector store contract."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from ragcast.settings import Settings


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


class VectorStore(ABC):
    """A vector database holding one collection per user and embedding model."""

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
    def upsert_batch(self, name: str, records: Sequence[VectorRecord]) -> None:
        """Insert or overwrite ``records`` (at most ``max_batch``)."""

    @abstractmethod
    def delete_stale(self, name: str, content_id: str, keep: int) -> None:
        """Delete chunks of ``content_id`` whose index is ``keep`` or more."""

    @abstractmethod
    def query(
        self, name: str, vector: Sequence[float], top_k: int, where: dict[str, Any] | None = None
    ) -> list[VectorHit]:
        """The ``top_k`` nearest records, optionally filtered by metadata equality/``$in``."""

    @abstractmethod
    def count(self, name: str) -> int:
        """How many vectors ``name`` holds (0 when it does not exist)."""

    def upsert(self, name: str, records: Sequence[VectorRecord]) -> None:
        """Upsert any number of records in batches of ``max_batch``."""
        for start in range(0, len(records), self.max_batch):
            self.upsert_batch(name, records[start : start + self.max_batch])
