"""The lexical index on SQLite: two FTS5 tables ranked by FTS5's BM25."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.orm import Session

from ragcast.retrieval.filters import Filters
from ragcast.retrieval.lexical.base import (
    LexicalIndex,
    LexicalResult,
    Stats,
    chunk_terms,
    combine,
    joins,
    plan,
)
from ragcast.retrieval.tokenize import query_terms

#: (FTS5 table, its fts5vocab table) of each field
WORDS = ("lexical_fts", "lexical_vocab")
GRAMS = ("lexical_grams", "lexical_gram_vocab")


def _match(words: Sequence[str]) -> str:
    return " OR ".join(f'"{w}"' for w in words)


class _Fts5Stats(Stats):
    def __init__(self, s: Session) -> None:
        self.s = s

    def words(self, owned_words: Sequence[str]) -> tuple[int, dict[str, int]]:
        return self._read(WORDS, owned_words)

    def grams(self, owned_grams: Sequence[str]) -> tuple[int, dict[str, int]]:
        return self._read(GRAMS, owned_grams)

    def _read(self, tables: tuple[str, str], words: Sequence[str]) -> tuple[int, dict[str, int]]:
        """How many rows the table holds (FTS5's BM25 counts every row) and in how many
        each word is (the vocabulary table: one lookup per word).

        The largest chunk id stands in for the row count (deleted chunks leave gaps, which
        IDF's logarithm barely feels; counting rows would read them all).
        """
        table, vocab = tables
        total = int(
            self.s.execute(text(f"SELECT coalesce(max(rowid), 0) FROM {table}")).scalar_one()
        )
        df = {}
        for w in words:
            found = self.s.execute(
                text(f"SELECT doc FROM {vocab} WHERE term = :w"), {"w": w}
            ).scalar()
            df[w] = int(found or 0)
        return max(total, *df.values()), df


class Fts5Index(LexicalIndex):
    """SQLite FTS5 with its BM25: ``lexical_fts`` (words) and ``lexical_grams``
    (trigrams), both keyed by chunk id."""

    def add(self, s: Session, user_id: int, chunks: Sequence[tuple[int, str]]) -> None:
        """Delete then insert each chunk's rows."""
        if not chunks:
            return
        ids = [{"id": cid} for cid, _ in chunks]
        rows = [(cid, chunk_terms(user_id, body)) for cid, body in chunks]
        for table, n in ((WORDS[0], 0), (GRAMS[0], 1)):
            s.execute(text(f"DELETE FROM {table} WHERE rowid = :id"), ids)
            s.execute(
                text(f"INSERT INTO {table} (rowid, terms) VALUES (:id, :terms)"),
                [{"id": cid, "terms": " ".join(t[n])} for cid, t in rows],
            )

    def search(
        self, s: Session, user_id: int, query: str, filters: Filters, limit: int
    ) -> LexicalResult:
        """One FTS5 query per field over the user's query terms that are not too common;
        chunks found by words only are scored on their trigrams too."""
        words = query_terms(query)
        if not words:
            return LexicalResult([], 0.0)
        p = plan(user_id, words, _Fts5Stats(s))
        found = self._ranked(s, WORDS[0], p.kept, user_id, filters, limit) if p.kept else {}
        grams = self._ranked(s, GRAMS[0], p.grams, user_id, filters, limit) if p.grams else {}
        missing = [cid for cid in found if cid not in grams]
        if p.grams and missing:
            grams |= self._ranked(s, GRAMS[0], p.grams, user_id, filters, len(missing), missing)
        return combine(p, found, grams, limit)

    @staticmethod
    def _ranked(
        s: Session,
        table: str,
        words: Sequence[str],
        user_id: int,
        filters: Filters,
        limit: int,
        among: Sequence[int] = (),
    ) -> dict[int, float]:
        """The best ``limit`` rows of ``table`` holding any of ``words`` (of ``among``
        when given), by BM25."""
        params: dict[str, object] = {}
        if filters == Filters():
            # Terms are the user's own: no join, and FTS5 ranks inside its own scan.
            sql = f"SELECT rowid, rank FROM {table} WHERE {table} MATCH :match"
            rowid = "rowid"
        else:
            where, params = joins(filters)
            sql = (
                f"SELECT f.rowid, f.rank FROM {table} f"
                + where.format(rowid="f.rowid")
                + f" AND {table} MATCH :match"
            )
            rowid = "f.rowid"
        if among:
            sql += f" AND {rowid} IN ({', '.join(str(int(c)) for c in among)})"
        rows = s.execute(
            text(sql + " ORDER BY rank LIMIT :limit"),
            {**params, "user": user_id, "match": _match(words), "limit": limit},
        ).all()
        # FTS5's bm25() is negated so that ORDER BY ascending puts the best first.
        return {int(r[0]): -float(r[1]) for r in rows}
