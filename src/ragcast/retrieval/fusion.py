"""Fusing a dense and a lexical ranking of the same chunks into one.

Dense scores come in already on the 0-1 scale of :mod:`ragcast.retrieval.scores` (each
model's cosine mapped from its unrelated level to its strong level); lexical ones as BM25
with the query's ceiling. Three methods, all measured by ``python -m bench retrieval``:

- **convex** (the default, and the only one whose scores are on the documented scale):
  ``alpha * dense + (1 - alpha) * lexical``, lexical as the share of the query's ceiling
  (the score of a chunk holding every query term once). A lexical match must reach
  :data:`FLOOR` of the ceiling to count at all (``(share - FLOOR) / (1 - FLOOR)``): an
  English question about a Japanese recording shares a few words with English texts,
  and those weak matches must not outvote the meaning. A chunk one list did not return
  scores 0 there.
- **convex-max**: the same with BM25 divided by the best score of the list, as in TM2C2
  (Bruch, Gai and Ingber, "An Analysis of Fusion Functions for Hybrid Retrieval", TOIS
  2023): a list of weak matches is stretched to look as strong as a list of good ones.
- **rrf**: reciprocal rank fusion, ``sum 1 / (k + rank)`` with ``k = 60``; it ignores
  how far apart the scores are.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Literal, TypeVar

K = TypeVar("K", bound=Hashable)

Fusion = Literal["convex", "convex-max", "rrf"]
#: weight of the dense ranking in the convex fusion, chosen on the evaluation set
ALPHA = 0.5
#: share of a query's ceiling a lexical match must pass to count in the convex fusion
FLOOR = 0.3
RRF_K = 60


def _normalised(ranked: Sequence[tuple[K, float]], top: float | None = None) -> dict[K, float]:
    """Scores over ``[0, top]`` as ``[0, 1]``; ``top`` is the list's best when not given."""
    if top is None:
        top = max((max(score, 0.0) for _, score in ranked), default=0.0)
    if top <= 0:
        return {key: 0.0 for key, _ in ranked}
    return {key: min(max(score, 0.0) / top, 1.0) for key, score in ranked}


def convex(
    dense: Sequence[tuple[K, float]],
    lexical: Sequence[tuple[K, float]],
    alpha: float = ALPHA,
    lexical_ceiling: float | None = None,
    floor: float = FLOOR,
) -> list[tuple[K, float]]:
    """Keys by ``alpha * dense + (1 - alpha) * lexical``, best first.

    ``dense`` scores are taken as they are (on 0-1, clamped). With ``lexical_ceiling``
    lexical scores are divided by it instead of by the best lexical score (see
    :class:`ragcast.retrieval.lexical.LexicalResult`), and what lies below ``floor`` of it
    counts as nothing: ``(x - floor) / (1 - floor)``.
    """
    d = {key: min(max(score, 0.0), 1.0) for key, score in dense}
    lx = _normalised(lexical, lexical_ceiling)
    if lexical_ceiling is not None and floor > 0:
        lx = {k: max(0.0, (v - floor) / (1 - floor)) for k, v in lx.items()}
    keys = list(dict.fromkeys([k for k, _ in dense] + [k for k, _ in lexical]))
    fused = [(k, alpha * d.get(k, 0.0) + (1 - alpha) * lx.get(k, 0.0)) for k in keys]
    return sorted(fused, key=lambda kv: kv[1], reverse=True)


def rrf(
    dense: Sequence[tuple[K, float]], lexical: Sequence[tuple[K, float]], k: int = RRF_K
) -> list[tuple[K, float]]:
    """Keys by the sum of ``1 / (k + rank)`` over the lists that hold them, best first."""
    fused: dict[K, float] = {}
    for ranking in (dense, lexical):
        for rank, (key, _) in enumerate(ranking, start=1):
            fused[key] = fused.get(key, 0.0) + 1.0 / (k + rank)
    return sorted(fused.items(), key=lambda kv: kv[1], reverse=True)


def fuse(
    dense: Sequence[tuple[K, float]],
    lexical: Sequence[tuple[K, float]],
    method: Fusion = "convex",
    alpha: float = ALPHA,
    lexical_ceiling: float | None = None,
) -> list[tuple[K, float]]:
    """One ranking from two, by ``method``."""
    if method == "rrf":
        return rrf(dense, lexical)
    return convex(dense, lexical, alpha, lexical_ceiling if method == "convex" else None)
