"""Search scores on one fixed scale, 0 to 1, that means the same for every query.

A score says how relevant a chunk is, not how it compares with the other candidates of
the same query, so a threshold (``min_score``) keeps the same kind of hit whatever was
asked:

- **dense**: the cosine similarity mapped linearly from the model's *unrelated* level
  (what a chunk about something else scores: 0) to its *strong* level (a close
  paraphrase or a translation: 1), clamped. Each model has its own levels
  (:data:`SCALES`, measured on ``python -m bench retrieval``): USE's unrelated chunks sit
  near 0.1, multilingual-e5's near 0.75.
- **lexical**: the share of the query's term weight the chunk holds: BM25 over the
  query's ceiling (the sum of its terms' IDFs, what a chunk of average length holding
  every term once scores), at most 1. A chunk holding only the query's common words
  scores near 0, one holding its rare words near 1.
- **hybrid**: ``ALPHA * dense + (1 - ALPHA) * lexical``, with lexical shares under
  ``FLOOR`` counted as 0 and the rest stretched back to 0-1 (see
  :mod:`ragcast.retrieval.fusion`).

A hit scoring under :data:`NOTHING` is not relevant at all and is never returned.
"""

from __future__ import annotations

from dataclasses import dataclass

#: scores under this are zero relevance: such hits are dropped (shown as 0.000)
NOTHING = 0.001


@dataclass(frozen=True, slots=True)
class CosineScale:
    """How one embedding model's cosine similarities read as relevance."""

    #: the cosine of a chunk about something else (at or under it: score 0)
    unrelated: float
    #: the cosine of a close paraphrase or translation (at or over it: score 1)
    strong: float

    def score(self, cosine: float) -> float:
        """``cosine`` on the 0-1 scale."""
        return clamp((cosine - self.unrelated) / (self.strong - self.unrelated))


#: measured levels by a fragment of the model's name (lower case), first match wins, on
#: the evaluation set of ``python -m bench retrieval`` (the cosine of each query with the
#: best chunk of every document): ``unrelated`` is the median cosine of the documents a
#: query is not about, ``strong`` about the 90th percentile of the documents it is about.
#: USE: unrelated median 0.10, their 99th percentile 0.30 (score 0.44), relevant median
#: 0.40 (0.67); e5: 0.77, 0.83 (0.55), 0.845 (0.68); MiniLM (English): 0.10, 0.40 (0.55),
#: 0.49 (0.71).
SCALES: tuple[tuple[str, CosineScale], ...] = (
    ("multilingual-e5", CosineScale(unrelated=0.77, strong=0.88)),
    ("use-multilingual", CosineScale(unrelated=0.10, strong=0.55)),
    ("minilm", CosineScale(unrelated=0.10, strong=0.65)),
)
#: for models not measured (cloud APIs): the cosine itself, negatives as 0
DEFAULT_SCALE = CosineScale(unrelated=0.0, strong=1.0)


def cosine_scale(model_name: str) -> CosineScale:
    """The scale of the embedding model called ``model_name``."""
    name = model_name.lower()
    return next((scale for part, scale in SCALES if part in name), DEFAULT_SCALE)


def lexical_share(bm25: float, ceiling: float) -> float:
    """BM25 as the share of the query's ceiling it reaches (0-1)."""
    return clamp(bm25 / ceiling) if ceiling > 0 else 0.0


def clamp(value: float) -> float:
    """``value`` within 0-1."""
    return min(max(value, 0.0), 1.0)
