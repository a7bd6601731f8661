"""The lexical index: every indexed chunk's terms, in the job store, per user.

One interface, two engines, chosen by the job store's database:

Every term is stored with its user's tenant in front (``u17_tide``), so a user's terms
are terms of their own: a lookup reads only that user's postings, however many chunks
other users (or their own other terms) have, and no tenant condition has to be merged
with it. Document frequencies are per user for the same reason.

- **SQLite** (embedded): an FTS5 table ``lexical_fts(terms)`` whose rowid is the chunk's
  id, ranked by FTS5's own BM25 (``_`` is a token character, so ``u17_tide`` is one
  token); ``lexical_vocab`` (``fts5vocab``) gives each term's document count.
- **PostgreSQL** (distributed): ``lexical_terms(chunk_id, user_id, terms tsvector,
  length)`` with a GIN index. PostgreSQL's ``ts_rank`` has no inverse document
  frequency, so ranking is BM25 computed here: each query term's document frequency is
  counted (up to :data:`PG_DF_CAP`), candidates are the chunks holding the rarer terms,
  and each is scored with binary term frequency and its length.

On both, a query term found in more than :data:`DF_CAP` chunks (:data:`PG_DF_CAP` on
PostgreSQL) is left out of the lookup (the rarest term is kept when all are that common):
its IDF is low, and its postings are what would make a search slower as the index grows.
Its weight still counts in the query's ceiling (:class:`LexicalResult`).

Terms come from :mod:`ragcast.retrieval.tokenize` on both engines, so every language is
cut the same way (CJK as character bigrams). Rows go when their chunk goes (a trigger on
SQLite, a cascading foreign key on PostgreSQL).
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session

from ragcast.retrieval.filters import Filters
from ragcast.retrieval.layout import tenant
from ragcast.retrieval.tokenize import query_terms, terms


def owned(user_id: int, words: Sequence[str]) -> list[str]:
    """``words`` as the user's own terms (``u17_tide``): ``_`` never occurs in a term."""
    prefix = f"{tenant(user_id)}_"
    return [prefix + w for w in words]


#: a term in more chunks than this is too common to look up: it adds little to BM25 and
#: reading its postings would make a search's cost grow with the index (see the module)
DF_CAP = 2000
#: the same on PostgreSQL, where counting a term's documents reads its rows (FTS5 keeps
#: the counts in its vocabulary); 500 was measured no faster for a user of 100,000 chunks
PG_DF_CAP = 2000
#: candidates scored per PostgreSQL query
CANDIDATES = 500
K1, B = 1.2, 0.75
SIZE_TTL_S = 60.0
#: document counts kept in memory at most (the cache starts over past it)
DF_CACHE = 100_000


@dataclass(slots=True)
class LexicalHit:
    """A chunk the lexical index found, with its BM25 score (higher is better)."""

    chunk_id: int
    score: float


@dataclass(slots=True)
class LexicalResult:
    """The hits of a lexical search and the query's ceiling: the BM25 score of a chunk of
    average length holding every query term once (the sum of their IDFs).

    A chunk that matches only a query's common words scores far below the ceiling, one
    that holds its rare words near it: fusion divides by the ceiling rather than by the
    best hit, so a list of weak matches stays weak.
    """

    hits: list[LexicalHit]
    ceiling: float


def idf(total: int, df: int) -> float:
    """BM25's inverse document frequency, as FTS5 computes it (never below 1e-6)."""
    ratio = (total - df + 0.5) / (df + 0.5)
    return math.log(ratio) if ratio > 1.000001 else 1e-6


def _joins(filters: Filters) -> tuple[str, dict[str, object]]:
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


class Fts5Index(LexicalIndex):
    """SQLite FTS5 with its BM25."""

    def add(self, s: Session, user_id: int, chunks: Sequence[tuple[int, str]]) -> None:
        """Delete then insert each chunk's row."""
        if not chunks:
            return
        ids = [{"id": cid} for cid, _ in chunks]
        s.execute(text("DELETE FROM lexical_fts WHERE rowid = :id"), ids)
        s.execute(
            text("INSERT INTO lexical_fts (rowid, terms) VALUES (:id, :terms)"),
            [{"id": cid, "terms": " ".join(owned(user_id, terms(body)))} for cid, body in chunks],
        )

    def search(
        self, s: Session, user_id: int, query: str, filters: Filters, limit: int
    ) -> LexicalResult:
        """One FTS5 query: any of the user's query terms that are not too common, ranked
        by BM25."""
        words = owned(user_id, query_terms(query))
        if not words:
            return LexicalResult([], 0.0)
        total, df = self._stats(s, words)
        ceiling = sum(idf(total, df[w]) for w in words)
        present = sorted((w for w in words if df[w]), key=lambda w: df[w])
        if not present:
            return LexicalResult([], ceiling)
        kept = [w for w in present if df[w] <= DF_CAP] or present[:1]
        match = " OR ".join(f'"{w}"' for w in kept)
        params: dict[str, object] = {}
        if filters == Filters():
            # Terms are the user's own: no join, and FTS5 ranks inside its own scan.
            sql = "SELECT rowid, rank FROM lexical_fts WHERE lexical_fts MATCH :match"
        else:
            joins, params = _joins(filters)
            sql = (
                "SELECT f.rowid, f.rank FROM lexical_fts f"
                + joins.format(rowid="f.rowid")
                + " AND lexical_fts MATCH :match"
            )
        rows = s.execute(
            text(sql + " ORDER BY rank LIMIT :limit"),
            {**params, "user": user_id, "match": match, "limit": limit},
        ).all()
        # FTS5's bm25() is negated so that ORDER BY ascending puts the best first.
        return LexicalResult([LexicalHit(int(r[0]), -float(r[1])) for r in rows], ceiling)

    @staticmethod
    def _stats(s: Session, words: Sequence[str]) -> tuple[int, dict[str, int]]:
        """How many chunks the index holds (FTS5's BM25 counts every row), and in how
        many each of the user's words is (the vocabulary table: one lookup per word).

        The largest chunk id stands in for the row count (deleted chunks leave gaps, which
        IDF's logarithm barely feels; counting rows would read them all).
        """
        total = int(s.execute(text("SELECT coalesce(max(rowid), 0) FROM lexical_fts")).scalar_one())
        df = {}
        for w in words:
            found = s.execute(
                text("SELECT doc FROM lexical_vocab WHERE term = :w"), {"w": w}
            ).scalar()
            df[w] = int(found or 0)
        return max(total, *df.values()), df


def _tsquery(words: Sequence[str]) -> str:
    """A ``tsquery`` literal OR-ing ``words`` as exact lexemes (no parser, no stemming)."""
    return " | ".join("'" + w.replace("'", "''").replace("\\", "\\\\") + "'" for w in words)


class PostgresIndex(LexicalIndex):
    """PostgreSQL ``tsvector`` rows with a GIN index; BM25 ranked here."""

    def __init__(self) -> None:
        #: (database, user id) -> (when read, chunk count, mean length), for SIZE_TTL_S
        self._sizes: dict[tuple[str, int], tuple[float, int, float]] = {}
        #: (database, user's term) -> (when read, document count), for SIZE_TTL_S
        self._dfs: dict[tuple[str, str], tuple[float, int]] = {}

    def _size(self, s: Session, user_id: int) -> tuple[int, float]:
        """How many chunks the user has indexed and their mean length in terms.

        Counting is linear in the user's chunks, so it is read once a minute at most:
        BM25's statistics move slowly.
        """
        now = time.monotonic()
        key = (str(s.get_bind().engine.url), user_id)
        seen = self._sizes.get(key)
        if seen is None or now - seen[0] > SIZE_TTL_S:
            total, avg = s.execute(
                text(
                    "SELECT count(*), coalesce(avg(length), 1) FROM lexical_terms"
                    " WHERE user_id = :user"
                ),
                {"user": user_id},
            ).one()
            seen = self._sizes[key] = (now, int(total), float(avg))
        return seen[1], max(seen[2], 1.0)

    def add(self, s: Session, user_id: int, chunks: Sequence[tuple[int, str]]) -> None:
        """Upsert each chunk's row."""
        if not chunks:
            return
        s.execute(
            text(
                "INSERT INTO lexical_terms (chunk_id, user_id, terms, length)"
                " VALUES (:id, :user, array_to_tsvector(CAST(:terms AS text[])), :length)"
                " ON CONFLICT (chunk_id) DO UPDATE SET user_id = EXCLUDED.user_id,"
                " terms = EXCLUDED.terms, length = EXCLUDED.length"
            ),
            [
                {"id": cid, "user": user_id, "terms": sorted(set(t)), "length": len(t)}
                for cid, body in chunks
                for t in [owned(user_id, terms(body))]
            ],
        )

    def search(
        self, s: Session, user_id: int, query: str, filters: Filters, limit: int
    ) -> LexicalResult:
        """BM25 over the candidates that hold the query's rarer terms."""
        words = owned(user_id, query_terms(query))
        if not words:
            return LexicalResult([], 0.0)
        df = {w: self._df(s, w) for w in words}
        present = sorted((w for w in words if df[w]), key=lambda w: df[w])
        if not present:
            return LexicalResult([], 0.0)
        total, avg = self._size(s, user_id)
        total = max(total, *df.values())  # the count may be up to a minute old
        weights = {w: idf(total, df[w]) for w in words}
        rare = [w for w in present if df[w] < PG_DF_CAP] or present[:1]
        flags = ", ".join(f"l.terms @@ CAST(:w{n} AS tsquery)" for n in range(len(present)))
        sql = f"SELECT l.chunk_id, l.length, {flags} FROM lexical_terms l"
        params: dict[str, object] = {}
        if filters == Filters():  # the terms are the user's own: no join needed
            sql += " WHERE TRUE"
        else:
            joins, params = _joins(filters)
            sql += joins.format(rowid="l.chunk_id")
        rows = s.execute(
            text(sql + " AND l.user_id = :user AND l.terms @@ CAST(:q AS tsquery) LIMIT :cap"),
            {
                **params,
                **{f"w{n}": _tsquery([w]) for n, w in enumerate(present)},
                "user": user_id,
                "q": _tsquery(rare),
                "cap": CANDIDATES,
            },
        ).all()
        hits = []
        for row in rows:
            norm = K1 * (1 - B + B * float(row[1]) / avg)
            held = zip(present, row[2:], strict=True)
            score = sum(weights[w] * (K1 + 1) / (1 + norm) for w, hit in held if hit)
            hits.append(LexicalHit(int(row[0]), score))
        hits.sort(key=lambda h: h.score, reverse=True)
        return LexicalResult(hits[:limit], sum(weights.values()))

    def _df(self, s: Session, word: str) -> int:
        """In how many chunks the (user's own) ``word`` is, counted up to :data:`PG_DF_CAP`.

        Counting reads up to that many rows, so a count is kept for :data:`SIZE_TTL_S`:
        the words people search for repeat, and BM25's statistics move slowly. A word found
        nowhere is not kept: the next search must see it once it is indexed.
        """
        now = time.monotonic()
        key = (str(s.get_bind().engine.url), word)
        seen = self._dfs.get(key)
        if seen is None or now - seen[0] > SIZE_TTL_S:
            count = s.execute(
                text(
                    "SELECT count(*) FROM (SELECT 1 FROM lexical_terms"
                    " WHERE terms @@ CAST(:q AS tsquery) LIMIT :cap) x"
                ),
                {"q": _tsquery([word]), "cap": PG_DF_CAP},
            ).scalar_one()
            if not count:  # a word not indexed yet may be by the next search: ask again
                return 0
            if len(self._dfs) > DF_CACHE:
                self._dfs.clear()
            seen = self._dfs[key] = (now, int(count))
        return seen[1]


def lexical_index(s: Session) -> LexicalIndex:
    """The engine for the session's database."""
    return Fts5Index() if s.get_bind().dialect.name == "sqlite" else _POSTGRES


_POSTGRES = PostgresIndex()
