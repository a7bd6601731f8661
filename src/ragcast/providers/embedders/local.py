"""Local sentence-transformers models (the packaged all-MiniLM-L6-v2 by default)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer

from ragcast.errors import ConfigurationError
from ragcast.pipeline.chunk import HFTokenCounter, TokenCounter
from ragcast.providers.embedders.base import Embedder, Vectors


class LocalEmbedder(Embedder):
    """A sentence-transformers model on the CPU, normalised vectors, batched."""

    id = "local"
    reserved_tokens = 2  # [CLS] and [SEP]

    def __init__(self, model: str, *, batch_size: int = 32, device: str = "cpu") -> None:
        self.model_name = model
        self.max_batch = batch_size
        self.device = device
        self._model: Any = None
        self._counter: TokenCounter | None = None
        self._lock = threading.Lock()
        self._load()

    def _load(self) -> Any:
        if self._model is None:
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # quiet logs

            try:
                model = SentenceTransformer(self.model_name, device=self.device)
            except Exception as exc:
                raise ConfigurationError(
                    f"cannot load local embedding model {self.model_name!r}: {exc}"
                ) from exc
            dims = model.get_embedding_dimension()
            if dims is None:
                raise ConfigurationError(f"model {self.model_name!r} reports no dimension")
            self.dimensions = int(dims)
            self.max_tokens = int(model.max_seq_length or 512)
            self._model = model
        return self._model

    def embed_batch(self, texts: Sequence[str], *, query: bool = False) -> Vectors:
        """Embed ``texts``; the model is symmetric, so queries and passages are alike."""
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        with self._lock:  # torch on 2 cores: concurrent encodes only thrash
            out = self._load().encode(
                list(texts),
                batch_size=self.max_batch,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(out, dtype=np.float32)

    def token_counter(self) -> TokenCounter:
        """The model's own fast tokenizer."""
        if self._counter is None:
            path = Path(self.model_name)
            if (path / "tokenizer.json").is_file():
                self._counter = HFTokenCounter.from_path(path)
            else:
                # A copy: the counter turns truncation off, the model must keep it.
                backend = self._load().tokenizer.backend_tokenizer
                self._counter = HFTokenCounter(Tokenizer.from_str(backend.to_str()))
        return self._counter
