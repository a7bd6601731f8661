"""Gemini embeddings through the Gemini API (``models/{model}:batchEmbedContents``).

``embedding_model.id = "gemini-exp"`` names Gemini embeddings; the contract's id dates
from the experimental ``gemini-embedding-exp-03-07``, and ``RAGCAST_GEMINI_MODEL``
(default ``gemini-embedding-001``, the current model) picks the model actually called.

A request is ``{"requests": [{"model": "models/…", "content": {"parts": [{"text": …}]},
"taskType": …, "outputDimensionality": …}]}`` with at most 100 texts, the key in the
``x-goog-api-key`` header (never in URLs or logs); the answer is ``{"embeddings":
[{"values": […]}]}``. Texts are chunked to the model's 2048-token input limit with the
estimate of :mod:`ragcast.providers.embedders.estimate`.

Dimensions default to 768 (Matryoshka; 128–2048 in the contract, the model gives up to
3072). Only the full 3072 output comes normalised, so every vector is normalised here.
Documents use ``RETRIEVAL_DOCUMENT`` (or the block's optional ``gemini_task_type``);
queries use ``RETRIEVAL_QUERY`` when documents are ``RETRIEVAL_DOCUMENT``, the same task
otherwise. Retries follow :mod:`ragcast.providers.embedders.http`.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np

from ragcast.errors import ItemError, ValidationError
from ragcast.providers.embedders.base import Embedder, EmbeddingSpec, Vectors
from ragcast.providers.embedders.estimate import ESTIMATE_NAME, EstimatingTokenCounter
from ragcast.providers.embedders.http import HttpConfig, JsonClient, http_config, unit_rows
from ragcast.tokens import TokenCounter

if TYPE_CHECKING:
    from ragcast.settings import Settings
    from ragcast.spec import EmbeddingModelConfig

MAX_BATCH = 100
INPUT_TOKENS = 2048
NATIVE_DIMS = 3072
DEFAULT_DIMS = 768
TASK_TYPES = (
    "RETRIEVAL_DOCUMENT",
    "RETRIEVAL_QUERY",
    "SEMANTIC_SIMILARITY",
    "CLASSIFICATION",
    "CLUSTERING",
    "QUESTION_ANSWERING",
    "FACT_VERIFICATION",
    "CODE_RETRIEVAL_QUERY",
)
QUERY_SIDE = {"RETRIEVAL_DOCUMENT": "RETRIEVAL_QUERY"}


class GeminiEmbedder(Embedder):
    """Gemini embedding model over HTTP: batches of 100, normalised vectors."""

    id = "gemini-exp"
    max_tokens = INPUT_TOKENS
    max_batch = MAX_BATCH

    def __init__(
        self,
        config: HttpConfig,
        model: str = "gemini-embedding-001",
        dimensions: int = DEFAULT_DIMS,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.model_name = model.removeprefix("models/")
        self.dimensions = dimensions
        self.task_type = "RETRIEVAL_DOCUMENT"
        self._counter = EstimatingTokenCounter()
        self._client = JsonClient(
            "Gemini",
            config,
            {"x-goog-api-key": config.api_key, "Accept": "application/json"},
            transport=transport,
            sleep=sleep,
        )

    @classmethod
    def resolve(cls, cfg: EmbeddingModelConfig, settings: Settings) -> EmbeddingSpec:
        """Dimensions ``dimensions`` or 768; an optional ``gemini_task_type`` is checked."""
        block = cfg.model_dump(mode="json")
        task = block.get("gemini_task_type")
        if task is not None and task not in TASK_TYPES:
            raise ValidationError(
                "embedding_model.gemini_task_type",
                f"expected one of {', '.join(TASK_TYPES)}",
                "Invalid embedding model configuration",
            )
        return EmbeddingSpec(cls.id, cfg.dimensions or DEFAULT_DIMS, block)

    @classmethod
    def from_settings(cls, settings: Settings, spec: EmbeddingSpec) -> Embedder:
        """A client for the configured model and ``spec.dimensions``."""
        return cls(
            http_config(settings.gemini_base_url, settings.gemini_api_key or "", settings),
            settings.gemini_model,
            spec.dimensions,
        )

    def bind(self, spec: EmbeddingSpec) -> Embedder:
        """A view with the job's document task type."""
        task = spec.options.get("gemini_task_type") or "RETRIEVAL_DOCUMENT"
        if task == self.task_type:
            return self
        view = copy.copy(self)
        view.task_type = str(task)
        return view

    def token_counter(self) -> TokenCounter:
        """The documented estimate (Gemini's tokenizer is not available offline)."""
        return self._counter

    @property
    def tokenizer_name(self) -> str:
        """The estimate's name."""
        return ESTIMATE_NAME

    def embed_batch(self, texts: Sequence[str], *, query: bool = False) -> Vectors:
        """Embed ``texts`` in requests of at most 100."""
        task = QUERY_SIDE.get(self.task_type, self.task_type) if query else self.task_type
        out = [
            self._request(texts[i : i + MAX_BATCH], task) for i in range(0, len(texts), MAX_BATCH)
        ]
        return np.concatenate(out) if out else np.zeros((0, self.dimensions), np.float32)

    def _request(self, texts: Sequence[str], task: str) -> Vectors:
        model = f"models/{self.model_name}"
        body = {
            "requests": [
                {
                    "model": model,
                    "content": {"parts": [{"text": t}]},
                    "taskType": task,
                    "outputDimensionality": self.dimensions,
                }
                for t in texts
            ]
        }
        answer = self._client.post(f"/v1beta/{model}:batchEmbedContents", body)
        items = answer.get("embeddings") if isinstance(answer, Mapping) else None
        if not isinstance(items, list) or len(items) != len(texts):
            raise ItemError(f"Gemini returned {len(items or [])} embeddings for {len(texts)} texts")
        rows: list[Any] = [i.get("values") if isinstance(i, Mapping) else None for i in items]
        if any(not isinstance(r, list) or len(r) != self.dimensions for r in rows):
            raise ItemError(f"Gemini returned embeddings without {self.dimensions} dimensions")
        return unit_rows(rows)

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()
