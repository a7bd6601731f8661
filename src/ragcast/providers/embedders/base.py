"""The embedder contract and the per-job embedding spec."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ragcast.pipeline.chunk import TokenCounter

if TYPE_CHECKING:
    from ragcast.api.schemas import EmbeddingModelConfig
    from ragcast.settings import Settings

Vectors = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class EmbeddingSpec:
    """What a job asked of its embedding model, resolved and validated."""

    id: str
    dimensions: int
    options: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def key(self) -> str:
        """A short stable name, used in collection names."""
        return f"{self.id}-{self.dimensions}"


class Embedder(ABC):
    """Turns texts into unit vectors of ``dimensions`` floats."""

    id: str = "embedder"
    model_name: str = ""
    dimensions: int = 0
    max_tokens: int = 512
    max_batch: int = 32
    supports_late_chunking: bool = False
    #: special tokens the model adds around each input (kept free when chunking)
    reserved_tokens: int = 0

    @classmethod
    def resolve(cls, cfg: EmbeddingModelConfig, settings: Settings) -> EmbeddingSpec:
        """Validate a request's ``embedding_model`` block for this backend (plugins).

        Raises :class:`ragcast.errors.ValidationError` for what the model cannot do.
        """
        raise NotImplementedError

    @classmethod
    def from_settings(cls, settings: Settings, spec: EmbeddingSpec) -> Embedder:
        """Build the embedder for a resolved spec (plugins)."""
        raise NotImplementedError

    @abstractmethod
    def embed_batch(self, texts: Sequence[str], *, query: bool = False) -> Vectors:
        """Embed ``texts`` (documents, or queries when ``query``) as an (n, d) float32 array."""

    @abstractmethod
    def token_counter(self) -> TokenCounter:
        """A counter using this model's own tokenizer."""

    def embed_query(self, text: str) -> Vectors:
        """Embed one search query."""
        return np.asarray(self.embed_batch([text], query=True)[0], dtype=np.float32)

    def warm_up(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Load what the first call would otherwise load (optional)."""
