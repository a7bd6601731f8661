"""Second-stage reranking of a search's best candidates (``rerank: true``).

A cross-encoder reads the query and a passage together and scores the pair; it is the
usual second stage after hybrid retrieval. No package on PyPI carries a cross-encoder's
weights (the hub's ms-marco and bge rerankers are downloaded at run time, which ragcast
never does), so none is built in: a server reranks with a sentence-transformers
``CrossEncoder`` folder its operator puts on disk and names in ``RAGCAST_RERANKER``
(for example ``cross-encoder/ms-marco-MiniLM-L-6-v2``, or
``jinaai/jina-reranker-v2-base-multilingual`` for queries and passages in other
languages). Without one, ``rerank: true`` is a 400 that says so.

The one packaged reranker found, nanoranker 1.2 (a scoring network over USE embeddings,
not a cross-encoder), lowered recall@1 on ragcast's evaluation set in every group
(exact terms from 0.94 to 0.19), so it is not offered.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from ragcast.errors import ConfigurationError

if TYPE_CHECKING:
    from ragcast.retrieval.types import Hit
    from ragcast.settings import Settings


class Reranker(Protocol):
    """Scores how well each passage answers a query (higher is better)."""

    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        """One score per passage."""
        ...


class CrossEncoderReranker:
    """A sentence-transformers cross-encoder loaded from a local folder, on the CPU."""

    def __init__(self, path: str) -> None:
        if not Path(path).is_dir():
            raise ConfigurationError(f"RAGCAST_RERANKER={path!r} is not a model folder")
        from sentence_transformers import CrossEncoder

        try:
            self._model = CrossEncoder(path, device="cpu", local_files_only=True)
        except Exception as exc:
            raise ConfigurationError(f"cannot load the reranker at {path!r}: {exc}") from exc
        self._lock = threading.Lock()

    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        """The cross-encoder's relevance score of each (query, passage) pair."""
        if not passages:
            return []
        with self._lock:  # torch on a few cores: concurrent predictions only thrash
            out = self._model.predict([(query, p) for p in passages], show_progress_bar=False)
        return [float(v) for v in np.asarray(out, dtype=np.float32).reshape(-1)]


_LOADED: dict[str, Reranker] = {}
_LOCK = threading.Lock()


def reranker(settings: Settings) -> Reranker:
    """The configured reranker, loaded once per process; ConfigurationError when none."""
    path = settings.reranker
    if not path:
        raise ConfigurationError(
            "this server has no reranker: set RAGCAST_RERANKER to a sentence-transformers "
            "CrossEncoder folder, or search without rerank"
        )
    with _LOCK:
        found = _LOADED.get(path)
        if found is None:
            found = _LOADED[path] = CrossEncoderReranker(path)
        return found


def rerank_hits(settings: Settings, query: str, hits: list[Hit]) -> list[Hit]:
    """``hits`` ordered by the reranker; each hit's score becomes the reranker's."""
    scores = reranker(settings).score(query, [h.text for h in hits])
    for hit, score in zip(hits, scores, strict=True):
        hit.score = score
    return sorted(hits, key=lambda h: h.score, reverse=True)
