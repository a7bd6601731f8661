"""The lexical index: every indexed chunk's terms, in the job store, per user.

One interface, two engines, chosen by the job store's database:

Every term is stored with its user's tenant in front (``u17_tide``), so a user's terms
are terms of their own: a lookup reads only that user's postings, however many chunks
other users (or their own other terms) have, and no tenant condition has to be merged
with it. Document frequencies are per user for the same reason.

Two fields per chunk, both from :mod:`ragcast.retrieval.tokenize` on both engines:

- **words**, cut the same way in every language (CJK as character bigrams);
- **sub-words** (:mod:`ragcast.retrieval.subword`): the character trigrams of the words,
  with their starts and ends marked and the trigrams across each join of two words, so
  that a word the recogniser split, glued or misspelled is still found approximately.
  Only query words the user's index does not hold are expanded at query time (a word
  that is there is matched as it is), and a chunk's sub-word share is capped at what
  the word itself is worth: an exact word always scores about
  twice what its trigrams alone can (:class:`LexicalResult` gives the scale).

- **SQLite** (embedded, :mod:`.fts5`): FTS5 tables ``lexical_fts(terms)`` and
  ``lexical_grams(terms)`` whose rowid is the chunk's id, ranked by FTS5's own BM25
  (``_`` is a token character, so ``u17_tide`` is one token); ``lexical_vocab`` and
  ``lexical_gram_vocab`` (``fts5vocab``) give each term's document count.
- **PostgreSQL** (distributed, :mod:`.postgres`): ``lexical_terms(chunk_id, user_id,
  terms, length, grams, gram_length)`` with GIN indexes on both tsvectors; BM25 is
  computed here (``ts_rank`` has no IDF) from document counts the table
  ``lexical_df`` keeps per user and term.

On both, a query term found in more than :data:`DF_CAP` chunks is left out of the lookup
(for words, the rarest is kept when all are that common): its IDF is low, and its
postings are what would make a search slower as the index grows. Its weight still counts
in the query's ceiling. Rows go when their chunk goes (triggers on SQLite, a cascading
foreign key on PostgreSQL).
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from ragcast.retrieval.lexical.base import (
    DF_CAP,
    K1,
    SUBWORD_WEIGHT,
    B,
    LexicalHit,
    LexicalIndex,
    LexicalResult,
    idf,
    owned,
)
from ragcast.retrieval.lexical.fts5 import Fts5Index
from ragcast.retrieval.lexical.postgres import PostgresIndex

__all__ = [
    "B",
    "DF_CAP",
    "K1",
    "SUBWORD_WEIGHT",
    "Fts5Index",
    "LexicalHit",
    "LexicalIndex",
    "LexicalResult",
    "PostgresIndex",
    "idf",
    "lexical_index",
    "owned",
]


def lexical_index(s: Session) -> LexicalIndex:
    """The engine for the session's database."""
    return Fts5Index() if s.get_bind().dialect.name == "sqlite" else _POSTGRES


_POSTGRES = PostgresIndex()
