"""What a search is asked and what it answers, shared by the retrievers and the reranker."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from ragcast.retrieval.filters import Filters

Mode = Literal["hybrid", "dense", "lexical"]
MODES: tuple[Mode, ...] = ("hybrid", "dense", "lexical")
Key = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Query:
    """One search: the text, how to search, what to keep."""

    text: str
    top_k: int = 10
    mode: Mode = "hybrid"
    filters: Filters = field(default_factory=Filters)
    #: neighbouring chunks to return on each side of a hit
    context: int = 0
    rerank: bool = False
    #: the least score a hit may have (0-1, the scale of :mod:`ragcast.retrieval.scores`);
    #: with ``rerank``, candidates are kept by it before they are reordered
    min_score: float = 0.0


@dataclass(slots=True)
class Passage:
    """A hit with its neighbours: one text and the time span it covers."""

    text: str
    start_s: float | None
    end_s: float | None
    first_chunk: int
    last_chunk: int


@dataclass(slots=True)
class Hit:
    """A chunk found: its score (0-1, see :mod:`ragcast.retrieval.scores`; the reranker's
    with rerank), text and metadata."""

    score: float
    text: str
    metadata: dict[str, Any]
    context: Passage | None = None
