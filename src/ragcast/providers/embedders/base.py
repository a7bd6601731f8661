"""The embedder contract and the per-job embedding spec."""

from __future__ import annotations

import hashlib
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ragcast.tokens import TokenCounter

if TYPE_CHECKING:
    from ragcast.settings import Settings
    from ragcast.spec import EmbeddingModelConfig

Vectors = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class EmbeddingSpec:
    """What a job asked of its embedding model, resolved and validated."""

    id: str
    dimensions: int
    options: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def key(self) -> str:
        """A short stable name, used in collection names: the model too for ``local``."""
        model = self.options.get("model") if self.id == "local" else None
        if isinstance(model, str) and model:
            return f"{self.id}-{model_slug(model)}-{self.dimensions}"
        return f"{self.id}-{self.dimensions}"


def model_slug(name: str) -> str:
    """A short name safe in every store's collection names (``all-minilm-l6-v2``).

    A path becomes its last part plus 6 hex digits of its SHA-1, so two folders of the
    same name never share a collection.
    """
    base = re.sub(r"[^a-z0-9]+", "-", name.rstrip("/").rsplit("/", 1)[-1].lower()).strip("-")
    if "/" in name or not base:
        base = f"{base[:24]}-{hashlib.sha1(name.encode()).hexdigest()[:6]}".strip("-")
    return base[:32]


class Embedder(ABC):
    """Turns texts into unit vectors of ``dimensions`` floats.

    One instance per model and dimensions is shared by every job of a process; a job's
    own options (task, late chunking, multi-vector…) are bound with :meth:`bind`, which
    returns a light view sharing the model or connection pool.
    """

    id: str = "embedder"
    model_name: str = ""
    dimensions: int = 0
    max_tokens: int = 512
    max_batch: int = 32
    #: whether :meth:`embed_in_context` is implemented (late chunking)
    supports_late_chunking: bool = False
    #: whether :meth:`embed_multi_vector` is implemented
    supports_multi_vector: bool = False
    #: width of each token vector of a multi-vector embedding
    multi_vector_dimensions: int = 0
    #: special tokens the model adds around each input (kept free when chunking)
    reserved_tokens: int = 0
    #: set by :meth:`bind`: the job asked to embed chunks in the context of their document
    late_chunking: bool = False
    #: set by :meth:`bind`: the job asked for multi-vector embeddings too
    multi_vector: bool = False

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

    def bind(self, spec: EmbeddingSpec) -> Embedder:
        """This embedder configured with a job's options (``spec.options``); default: itself."""
        return self

    @property
    def tokenizer_name(self) -> str:
        """What :meth:`token_counter` counts with, recorded on each job (``Job.tokenizer``)."""
        return self.model_name

    @abstractmethod
    def embed_batch(self, texts: Sequence[str], *, query: bool = False) -> Vectors:
        """Embed ``texts`` (documents, or queries when ``query``) as an (n, d) float32 array."""

    @abstractmethod
    def token_counter(self) -> TokenCounter:
        """A counter using this model's own tokenizer."""

    def embed_in_context(self, chunks: Sequence[str]) -> Vectors:
        """Embed a document's ``chunks`` (in order) so each vector sees the whole document.

        Late chunking: one (n, d) array, one unit vector per chunk. Backends that set
        :attr:`supports_late_chunking` implement it.
        """
        raise NotImplementedError(f"{self.id} does not support late chunking")

    def embed_multi_vector(self, texts: Sequence[str]) -> list[Vectors]:
        """Per-token vectors of each text: one (tokens, :attr:`multi_vector_dimensions`) array."""
        raise NotImplementedError(f"{self.id} does not support multi-vector embeddings")

    def embed_query(self, text: str) -> Vectors:
        """Embed one search query."""
        return np.asarray(self.embed_batch([text], query=True)[0], dtype=np.float32)

    def warm_up(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Load what the first call would otherwise load (optional)."""
