"""What both lexical engines share: owned terms, BM25's IDF, hits, and how a chunk's word
and sub-word scores make one lexical score."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from ragcast.retrieval.filters import Filters
from ragcast.retrieval.layout import tenant
from ragcast.retrieval.subword import query_subwords, subwords
from ragcast.retrieval.tokenize import terms

#: a term in more chunks than this is too common to look up: it adds little to BM25 and
#: reading its postings would make a search's cost grow with the index (see the package)
DF_CAP = 2000
#: postings read per field and search on PostgreSQL, and trigram postings looked up on
#: both engines, the rarest terms first (one term past it at most, see :func:`rarest`)
CANDIDATES = 1000
#: a query word is cut into trigrams when the user's index holds it in at most this many
#: chunks: a word found nowhere is what a recognition error looks like (split, glued or
#: misspelled), and a word that is found is matched exactly. Looking up trigrams is not
#: free (FTS5 counts a term's documents by reading its postings), so words that are
#: found spend nothing on them.
EXPAND_DF = 0
#: weight of a word's sub-words against the word itself: a chunk holding every trigram of
#: a query word scores as much from them as from the word, so an exact word scores twice
#: what a split, glued or misspelled one can
SUBWORD_WEIGHT = 1.0
K1, B = 1.2, 0.75


def owned(user_id: int, words: Sequence[str]) -> list[str]:
    """``words`` as the user's own terms (``u17_tide``)."""
    prefix = f"{tenant(user_id)}_"
    return [prefix + w for w in words]


def chunk_terms(user_id: int, body: str) -> tuple[list[str], list[str]]:
    """A chunk's owned words and owned sub-words, in order, repeats kept."""
    words = terms(body)
    return owned(user_id, words), owned(user_id, subwords(words))


def idf(total: int, df: int) -> float:
    """BM25's inverse document frequency, as FTS5 computes it (never below 1e-6)."""
    ratio = (total - df + 0.5) / (df + 0.5)
    return math.log(ratio) if ratio > 1.000001 else 1e-6


@dataclass(slots=True)
class LexicalHit:
    """A chunk the lexical index found, with its lexical score (higher is better)."""

    chunk_id: int
    score: float


@dataclass(slots=True)
class LexicalResult:
    """The hits of a lexical search and the query's ceiling.

    A hit's score is its BM25 over the query's words plus :data:`SUBWORD_WEIGHT` times
    its sub-word share: BM25 over the trigrams of the query's words the index lacks, as a
    fraction (at most 1) of those trigrams' summed IDF, times those words' summed IDF.
    The ceiling is the score of a chunk of average length holding every query word once
    (and so all their trigrams): the words' IDFs plus the weighted IDFs of the words
    that were expanded (those the index does not hold, :data:`EXPAND_DF`). A chunk that
    matches only common words, or only parts of a word, scores well below it; fusion
    divides by the ceiling rather than by the best hit, so weak matches stay weak.
    """

    hits: list[LexicalHit]
    ceiling: float


@dataclass(slots=True)
class Plan:
    """One query's terms and weights on one engine's statistics."""

    #: owned query words found in the index, rarest first, with their IDF
    present: list[str]
    #: the present words that are rare enough to look up
    kept: list[str]
    #: every owned query word's IDF
    weights: dict[str, float]
    #: owned trigrams of the expandable words to look up: the rarest, up to
    #: :data:`CANDIDATES` postings (the discriminating ones; the others are left out of
    #: both a chunk's sub-word score and its ceiling)
    grams: list[str]
    #: the summed IDF of those trigrams and of the query's trigrams no chunk holds: a
    #: chunk holding every one of them has the full share
    gram_ceiling: float
    #: the summed IDF of the expandable words (what a full sub-word match is worth)
    mass: float

    @property
    def ceiling(self) -> float:
        """See :class:`LexicalResult`."""
        return sum(self.weights.values()) + SUBWORD_WEIGHT * self.mass


def plan(
    user_id: int,
    words: Sequence[str],
    stats: Stats,
) -> Plan:
    """Which of a query's words and trigrams to look up, and what each weighs.

    Words found in at most :data:`EXPAND_DF` chunks (none) are expanded into trigrams,
    cut from each run of consecutive expanded words, so a query's split word meets a
    glued one. Only the rarest trigrams are looked up (:func:`rarest`).
    """
    mine = owned(user_id, words)
    total, df = stats.words(mine)
    weights = {w: idf(total, df[w]) for w in mine}
    present = sorted((w for w in mine if df[w]), key=lambda w: df[w])
    kept = [w for w in present if df[w] <= DF_CAP] or present[:1]
    runs: list[list[str]] = [[]]
    mass = 0.0
    for word, own in zip(words, mine, strict=True):
        if df[own] <= EXPAND_DF:
            runs[-1].append(word)
            mass += weights[own]
        elif runs[-1]:
            runs.append([])
    grams = owned(user_id, list(dict.fromkeys(g for run in runs for g in query_subwords(run))))
    if not grams:
        return Plan(present, kept, weights, [], 0.0, 0.0)
    gram_total, gram_df = stats.grams(grams)
    found = sorted((g for g in grams if 0 < gram_df[g] <= DF_CAP), key=lambda g: gram_df[g])
    looked = rarest(found, gram_df)
    # Trigrams of the query that no chunk holds count in the ceiling at full weight: a
    # made-up word shares a trigram or two with many chunks, and that must stay a small
    # share of what the word is worth, not the whole of it.
    missing = [g for g in grams if not gram_df[g]]
    gram_ceiling = sum(idf(gram_total, gram_df[g]) for g in [*looked, *missing])
    return Plan(present, kept, weights, looked, gram_ceiling, mass)


def rarest(terms: Sequence[str], df: Mapping[str, int]) -> list[str]:
    """The first of ``terms`` (rarest first) whose postings add up to :data:`CANDIDATES`
    (the first one whatever its count)."""
    out: list[str] = []
    read = 0
    for t in terms:
        if out and read + df[t] > CANDIDATES:
            break
        out.append(t)
        read += df[t]
    return out


class Stats(ABC):
    """An engine's term statistics: the index's size and each term's document count."""

    @abstractmethod
    def words(self, owned_words: Sequence[str]) -> tuple[int, dict[str, int]]:
        """The chunk count BM25 uses and each word's document count."""

    @abstractmethod
    def grams(self, owned_grams: Sequence[str]) -> tuple[int, dict[str, int]]:
        """The same for trigrams."""


def combine(
    p: Plan, words: Mapping[int, float], grams: Mapping[int, float], limit: int
) -> LexicalResult:
    """Each chunk's word BM25 plus its weighted sub-word share, best first."""
    scale = SUBWORD_WEIGHT * p.mass / p.gram_ceiling if p.gram_ceiling > 0 else 0.0
    cap = SUBWORD_WEIGHT * p.mass
    scores = dict(words)
    for cid, score in grams.items():
        scores[cid] = scores.get(cid, 0.0) + min(score * scale, cap)
    ranked = sorted(scores.items(), key=lambda kv: kv[1], reverse=True)[:limit]
    return LexicalResult([LexicalHit(cid, score) for cid, score in ranked], p.ceiling)


def joins(filters: Filters) -> tuple[str, dict[str, object]]:
    """The joins and conditions that apply ``filters`` to a lexical row (``{rowid}``)."""
    conds, params = filters.sql()
    where = "".join(f" AND {c}" for c in conds)
    return (
        " JOIN chunks c ON c.id = {rowid} JOIN items i ON i.id = c.item_id"
        " JOIN jobs j ON j.id = i.job_pk WHERE j.user_id = :user" + where,
        params,
    )


class LexicalIndex(ABC):
    """Adds chunks' terms and finds the best chunks of one user for a query."""

    @abstractmethod
    def add(self, s: Session, user_id: int, chunks: Sequence[tuple[int, str]]) -> None:
        """Index ``(chunk id, text)`` pairs of ``user_id`` (replacing earlier terms)."""

    @abstractmethod
    def search(
        self, s: Session, user_id: int, query: str, filters: Filters, limit: int
    ) -> LexicalResult:
        """The user's ``limit`` best chunks for ``query`` under ``filters``."""
