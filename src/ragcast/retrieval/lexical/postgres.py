"""The lexical index on PostgreSQL: ``tsvector`` rows with GIN indexes, BM25 computed here
from stored document counts, candidates read by term rarity.

Why stored counts: BM25 needs each query term's document count in the user's chunks, and
PostgreSQL can only count a term's rows by reading its whole posting list (a GIN index
answers bitmap scans only, which no ``LIMIT`` cuts short), so a search cost what the
user's commonest query word costs: linear in the user's size. Statement triggers on
``lexical_terms`` (migration ``0013``) keep ``lexical_df(term, field, df)`` and
``lexical_sizes(user_id, chunks, length, gram_length)`` exact in the same transaction as
the rows (inserts, re-indexing and deletes alike, cascades included); a user's updates
are serialised by a transaction-scoped advisory lock on the user, so two indexers of one
user never deadlock on shared counts. A search then reads its statistics by primary key
and only the postings of its rarest terms: the chunks holding them, up to ``CANDIDATES``
rows (one term past it at most, never more than ``DF_CAP``; see ``base.py``), are all
scored, words and trigrams, with BM25 (binary term frequency, each field's own mean
length). A chunk holding only the commoner terms is not read: it could not outrank one
holding the rare ones by much, and reading it is what would grow with the index.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.orm import Session

from ragcast.retrieval.filters import Filters
from ragcast.retrieval.lexical.base import (
    DF_CAP,
    K1,
    B,
    LexicalIndex,
    LexicalResult,
    Stats,
    chunk_terms,
    combine,
    idf,
    joins,
    plan,
    rarest,
)
from ragcast.retrieval.tokenize import query_terms

WORD, GRAM = 0, 1


def _tsquery(words: Sequence[str]) -> str:
    """A ``tsquery`` literal OR-ing ``words`` as exact lexemes (no parser, no stemming)."""
    return " | ".join("'" + w.replace("'", "''").replace("\\", "\\\\") + "'" for w in words)


class _PostgresStats(Stats):
    """The user's stored statistics (see the module)."""

    def __init__(self, s: Session, user_id: int) -> None:
        self.s = s
        row = s.execute(
            text("SELECT chunks, length, gram_length FROM lexical_sizes WHERE user_id = :u"),
            {"u": user_id},
        ).one_or_none()
        self.total = int(row[0]) if row else 0
        self.mean_length = max(float(row[1]) / max(self.total, 1), 1.0) if row else 1.0
        self.mean_grams = max(float(row[2]) / max(self.total, 1), 1.0) if row else 1.0
        self.df: dict[tuple[int, str], int] = {}

    def words(self, owned_words: Sequence[str]) -> tuple[int, dict[str, int]]:
        return self._read(WORD, owned_words)

    def grams(self, owned_grams: Sequence[str]) -> tuple[int, dict[str, int]]:
        return self._read(GRAM, owned_grams)

    def _read(self, field: int, terms: Sequence[str]) -> tuple[int, dict[str, int]]:
        rows = self.s.execute(
            text("SELECT term, df FROM lexical_df WHERE field = :f AND term = ANY(:t)"),
            {"f": field, "t": list(terms)},
        ).all()
        found = {str(t): int(n) for t, n in rows}
        df = {t: found.get(t, 0) for t in terms}
        self.df.update({(field, t): n for t, n in df.items()})
        return max(self.total, *df.values()), df


class PostgresIndex(LexicalIndex):
    """PostgreSQL ``tsvector`` rows with GIN indexes; BM25 ranked here."""

    def add(self, s: Session, user_id: int, chunks: Sequence[tuple[int, str]]) -> None:
        """Upsert each chunk's row, all in one statement (the counts' triggers fire once)."""
        if not chunks:
            return
        ids, words, grams, lengths, gram_lengths = [], [], [], [], []
        for cid, body in chunks:
            w, g = chunk_terms(user_id, body)
            ids.append(cid)
            words.append(" ".join(sorted(set(w))))
            grams.append(" ".join(sorted(set(g))))
            lengths.append(len(w))
            gram_lengths.append(len(g))
        s.execute(
            text(
                "INSERT INTO lexical_terms (chunk_id, user_id, terms, length, grams, gram_length)"
                " SELECT r.id, :user, array_to_tsvector(string_to_array(r.words, ' ')), r.length,"
                " array_to_tsvector(string_to_array(r.grams, ' ')), r.gram_length"
                " FROM unnest(CAST(:ids AS int[]), CAST(:words AS text[]), CAST(:lengths AS int[]),"
                " CAST(:grams AS text[]), CAST(:gram_lengths AS int[]))"
                " AS r(id, words, length, grams, gram_length)"
                " ON CONFLICT (chunk_id) DO UPDATE SET user_id = EXCLUDED.user_id,"
                " terms = EXCLUDED.terms, length = EXCLUDED.length, grams = EXCLUDED.grams,"
                " gram_length = EXCLUDED.gram_length"
            ),
            {
                "user": user_id,
                "ids": ids,
                "words": words,
                "lengths": lengths,
                "grams": grams,
                "gram_lengths": gram_lengths,
            },
        )

    def search(
        self, s: Session, user_id: int, query: str, filters: Filters, limit: int
    ) -> LexicalResult:
        """BM25 over the chunks holding the query's rarest words and trigrams."""
        words = query_terms(query)
        if not words:
            return LexicalResult([], 0.0)
        stats = _PostgresStats(s, user_id)
        p = plan(user_id, words, stats)
        if not p.present and not p.grams:
            return LexicalResult([], p.ceiling)
        df = {t: n for (field, t), n in stats.df.items() if field == WORD}
        gram_df = {t: n for (field, t), n in stats.df.items() if field == GRAM}
        read_words, read_grams = rarest(p.kept, df), p.grams
        flags = [f"l.terms @@ CAST(:w{n} AS tsquery)" for n in range(len(p.present))]
        flags += [f"l.grams @@ CAST(:g{n} AS tsquery)" for n in range(len(p.grams))]
        conds = []
        if read_words:
            conds.append("l.terms @@ CAST(:qw AS tsquery)")
        if read_grams:
            conds.append("l.grams @@ CAST(:qg AS tsquery)")
        sql = f"SELECT l.chunk_id, l.length, l.gram_length, {', '.join(flags)} FROM lexical_terms l"
        params: dict[str, object] = {}
        if filters == Filters():  # the terms are the user's own: no join, no user condition
            sql += " WHERE TRUE"
        else:
            where, params = joins(filters)
            sql += where.format(rowid="l.chunk_id")
        # The candidates are a few postings of the rarest terms: the GIN indexes find them;
        # a small user's table may tempt the planner into reading every row's tsvectors.
        s.execute(text("SET LOCAL enable_seqscan = off"))
        rows = s.execute(
            text(sql + f" AND ({' OR '.join(conds)}) LIMIT :cap"),
            {
                **params,
                **{f"w{n}": _tsquery([w]) for n, w in enumerate(p.present)},
                **{f"g{n}": _tsquery([g]) for n, g in enumerate(p.grams)},
                "user": user_id,
                "qw": _tsquery(read_words),
                "qg": _tsquery(read_grams),
                "cap": 2 * DF_CAP,
            },
        ).all()
        gram_weights = {g: idf(max(stats.total, gram_df[g]), gram_df[g]) for g in p.grams}
        word_scores: dict[int, float] = {}
        gram_scores: dict[int, float] = {}
        split = len(p.present)
        for row in rows:
            cid = int(row[0])
            held = row[3 : 3 + split]
            norm = K1 * (1 - B + B * float(row[1]) / stats.mean_length)
            score = sum(p.weights[w] for w, hit in zip(p.present, held, strict=True) if hit)
            if score:
                word_scores[cid] = score * (K1 + 1) / (1 + norm)
            norm = K1 * (1 - B + B * float(row[2]) / stats.mean_grams)
            held = row[3 + split :]
            score = sum(gram_weights[g] for g, hit in zip(p.grams, held, strict=True) if hit)
            if score:
                gram_scores[cid] = score * (K1 + 1) / (1 + norm)
        return combine(p, word_scores, gram_scores, limit)
