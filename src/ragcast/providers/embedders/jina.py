"""Jina Embeddings v4 through Jina's HTTP API (``POST /v1/embeddings``).

Requests carry ``model: jina-embeddings-v4``, ``task``, ``dimensions`` (Matryoshka,
128–2048), ``truncate``, ``late_chunking`` and ``input: [{"text": …}]``; multi-vector
output is a second request with ``return_multivector: true`` (Jina gives 128-float
token vectors, whatever ``dimensions`` says). Requests hold at most 2048 inputs and
at most ``RAGCAST_JINA_MAX_REQUEST_TOKENS`` estimated tokens; inputs are chunked to the
8192-token context. Retries follow :mod:`ragcast.providers.embedders.http`.

The contract's options, per job:

- ``jina_v4_task``: the adapter for documents; queries use its query side
  (``retrieval.passage`` → ``retrieval.query``, ``code.passage`` → ``code.query``,
  ``text-matching`` is symmetric).
- ``jina_v4_late_chunking``: one request per document with its chunks in order
  (``late_chunking: true``), so each chunk's vector sees its transcript; a document over
  the context is sent as overlapping windows of chunks (:mod:`.late`).
- ``jina_v4_multi_vector``: also store per-token vectors (refused at submission where the
  vector database cannot hold them).
- ``jina_v4_truncate_at_max``: Jina cuts an over-long input instead of failing it.
- ``jina_v4_optimize_for_rag`` has no API field. In ragcast it selects the asymmetric
  retrieval pairing: documents always get a passage adapter (a ``*.query`` task given for
  documents is turned into its passage side) and queries the matching query adapter.
  Turned off, the task is used exactly as given for documents and queries alike.

Jina v4's tokenizer cannot be had offline: chunks are sized with the estimate of
:mod:`ragcast.providers.embedders.estimate`.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np

from ragcast.errors import ItemError
from ragcast.providers.embedders.base import Embedder, EmbeddingSpec, Vectors
from ragcast.providers.embedders.estimate import ESTIMATE_NAME, EstimatingTokenCounter
from ragcast.providers.embedders.http import HttpConfig, JsonClient, http_config, unit_rows
from ragcast.providers.embedders.late import owners, plan_windows
from ragcast.tokens import TokenCounter

if TYPE_CHECKING:
    from ragcast.settings import Settings
    from ragcast.spec import EmbeddingModelConfig

MODEL = "jina-embeddings-v4"
TASKS = ("retrieval.passage", "retrieval.query", "text-matching", "code.passage", "code.query")
QUERY_SIDE = {"retrieval.passage": "retrieval.query", "code.passage": "code.query"}
PASSAGE_SIDE = {query: passage for passage, query in QUERY_SIDE.items()}
MAX_INPUTS = 2048
CONTEXT_TOKENS = 8192
MULTI_VECTOR_DIMS = 128
DEFAULT_DIMS = 1024


@dataclass(frozen=True, slots=True)
class JinaOptions:
    """A job's Jina options, read from its ``embedding_model`` block."""

    task: str = "retrieval.passage"
    late_chunking: bool = True
    multi_vector: bool = False
    truncate: bool = True
    optimize_for_rag: bool = True

    @classmethod
    def parse(cls, options: Mapping[str, Any]) -> JinaOptions:
        """Options from the contract's keys; absent keys take the contract's defaults."""
        d = cls()
        return cls(
            task=str(options.get("jina_v4_task") or d.task),
            late_chunking=bool(options.get("jina_v4_late_chunking", d.late_chunking)),
            multi_vector=bool(options.get("jina_v4_multi_vector", d.multi_vector)),
            truncate=bool(options.get("jina_v4_truncate_at_max", d.truncate)),
            optimize_for_rag=bool(options.get("jina_v4_optimize_for_rag", d.optimize_for_rag)),
        )

    @property
    def document_task(self) -> str:
        """The adapter documents are embedded with."""
        return PASSAGE_SIDE.get(self.task, self.task) if self.optimize_for_rag else self.task

    @property
    def query_task(self) -> str:
        """The adapter search queries are embedded with."""
        if not self.optimize_for_rag:
            return self.task
        return QUERY_SIDE.get(self.document_task, self.document_task)


class JinaEmbedder(Embedder):
    """Jina Embeddings v4 over HTTP: batched, late chunking, multi-vector."""

    id = "jina-v4"
    model_name = MODEL
    max_tokens = CONTEXT_TOKENS
    max_batch = 256  # rows the embed stage reads per round; requests are sized below
    supports_late_chunking = True
    supports_multi_vector = True
    multi_vector_dimensions = MULTI_VECTOR_DIMS
    reserved_tokens = 8  # the "Query: "/"Passage: " prompt v4 prepends, with room to spare

    def __init__(
        self,
        config: HttpConfig,
        dimensions: int = DEFAULT_DIMS,
        *,
        max_request_tokens: int = 65536,
        max_inputs: int = MAX_INPUTS,
        context_tokens: int = CONTEXT_TOKENS,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.dimensions = dimensions
        self.max_request_tokens = max_request_tokens
        self.max_inputs = max_inputs
        self.max_tokens = context_tokens
        self.options = JinaOptions()
        self.late_chunking = self.options.late_chunking
        self._counter = EstimatingTokenCounter()
        self._client = JsonClient(
            "Jina",
            config,
            {"Authorization": f"Bearer {config.api_key}", "Accept": "application/json"},
            transport=transport,
            sleep=sleep,
        )

    # -- registry hooks ---------------------------------------------------------------
    @classmethod
    def resolve(cls, cfg: EmbeddingModelConfig, settings: Settings) -> EmbeddingSpec:
        """Dimensions: ``jina_v4_dimensions``, else ``dimensions``, else 1024."""
        dims = cfg.jina_v4_dimensions or cfg.dimensions or DEFAULT_DIMS
        block = cfg.model_dump(mode="json")
        return EmbeddingSpec(
            cls.id, dims, {**block, "multi_vector": JinaOptions.parse(block).multi_vector}
        )

    @classmethod
    def from_settings(cls, settings: Settings, spec: EmbeddingSpec) -> Embedder:
        """A client for ``spec.dimensions`` with the server's key, URL and retry settings."""
        return cls(
            http_config(settings.jina_base_url, settings.jina_api_key or "", settings),
            spec.dimensions,
            max_request_tokens=settings.jina_max_request_tokens,
        )

    def bind(self, spec: EmbeddingSpec) -> Embedder:
        """A view with the job's task, late chunking, multi-vector and truncation."""
        view = copy.copy(self)
        view.options = JinaOptions.parse(spec.options)
        view.late_chunking = view.options.late_chunking
        view.multi_vector = view.options.multi_vector
        return view

    def token_counter(self) -> TokenCounter:
        """The documented estimate (Jina's tokenizer is not available offline)."""
        return self._counter

    @property
    def tokenizer_name(self) -> str:
        """The estimate's name."""
        return ESTIMATE_NAME

    # -- embedding --------------------------------------------------------------------
    def embed_batch(self, texts: Sequence[str], *, query: bool = False) -> Vectors:
        """Embed ``texts`` one request per batch, with the document or query adapter."""
        task = self.options.query_task if query else self.options.document_task
        out = [self._dense(batch, task, late=False) for batch in self._batches(texts)]
        return np.concatenate(out) if out else np.zeros((0, self.dimensions), np.float32)

    def embed_in_context(self, chunks: Sequence[str]) -> Vectors:
        """Late chunking: one request per window of the document's chunks, in order."""
        if not chunks:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        budget = self.max_tokens - self.reserved_tokens
        # Each chunk counts at least budget/max_inputs, so no window exceeds max_inputs.
        floor = -(-budget // self.max_inputs)
        lengths = [max(floor, n) for n in self._counter.count(chunks)]
        windows = plan_windows(lengths, budget, budget // 4)
        owner = owners(windows, lengths)
        out = np.zeros((len(chunks), self.dimensions), dtype=np.float32)
        for w, (start, end) in enumerate(windows):
            vectors = self._dense(chunks[start:end], self.options.document_task, late=True)
            for i in range(start, end):
                if owner[i] == w:
                    out[i] = vectors[i - start]
        return out

    def embed_multi_vector(self, texts: Sequence[str]) -> list[Vectors]:
        """Per-token vectors (n, 128) of each text, with the document adapter."""
        out: list[Vectors] = []
        for batch in self._batches(texts):
            body = {
                "model": MODEL,
                "task": self.options.document_task,
                "return_multivector": True,
                "truncate": self.options.truncate,
                "embedding_type": "float",
                "input": [{"text": t} for t in batch],
            }
            for item in self._data(body, len(batch)):
                matrix = item.get("embeddings")
                if not isinstance(matrix, list) or not matrix:
                    raise ItemError("Jina returned no multi-vector embedding")
                out.append(unit_rows(matrix))
        return out

    def _dense(self, texts: Sequence[str], task: str, *, late: bool) -> Vectors:
        body = {
            "model": MODEL,
            "task": task,
            "dimensions": self.dimensions,
            "late_chunking": late,
            "truncate": self.options.truncate,
            "embedding_type": "float",
            "input": [{"text": t} for t in texts],
        }
        rows = [item.get("embedding") for item in self._data(body, len(texts))]
        if any(not isinstance(r, list) or len(r) != self.dimensions for r in rows):
            raise ItemError(f"Jina returned embeddings without {self.dimensions} dimensions")
        return unit_rows(rows)

    def _data(self, body: Mapping[str, Any], expected: int) -> list[Mapping[str, Any]]:
        answer = self._client.post("/v1/embeddings", body)
        data = answer.get("data") if isinstance(answer, Mapping) else None
        if not isinstance(data, list) or len(data) != expected:
            raise ItemError(f"Jina returned {len(data or [])} embeddings for {expected} inputs")
        return sorted(data, key=lambda d: int(d.get("index", 0)))

    def _batches(self, texts: Sequence[str]) -> Iterator[Sequence[str]]:
        """Runs of at most ``max_inputs`` texts and ``max_request_tokens`` estimated tokens."""
        start, tokens = 0, 0
        for i, n in enumerate(self._counter.count(texts)):
            if i > start and (i - start >= self.max_inputs or tokens + n > self.max_request_tokens):
                yield texts[start:i]
                start, tokens = i, 0
            tokens += n
        if start < len(texts):
            yield texts[start:]

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()
