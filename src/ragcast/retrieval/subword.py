"""Sub-word terms for the lexical index: character trigrams of words, to survive
recognition errors.

A recogniser splits words ("thereunder" written "there under"), glues them ("Portal
liegenden" written "portalliegende") and misspells names ("Wentworth" as "buen worth").
The word index cannot match any of these; their character trigrams mostly still do.

Each word of three or more characters becomes its trigrams with ``_`` marking its start
and end (``_` never occurs in a term): "under" -> ``_un und nde der er_``. Between two
consecutive words the two trigrams across the join are added as well ("there under" ->
``reu eun``), so a split word holds every trigram of the whole word and a glued one every
trigram of its parts. Words of one or two characters (and the character bigrams of
scripts written without spaces, which are n-grams already) give no trigrams of their own.

Terms come from :func:`ragcast.retrieval.tokenize.terms`; the sub-words of a chunk are
made from its terms, so both engines and every migration cut them the same way.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

#: scripts written without spaces: their terms are character n-grams already
_UNSPACED = re.compile(
    "[\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff"
    "\uac00-\ud7af\uf900-\ufaff\U00020000-\U0002ffff]"
)
#: marks a word's start and end inside a trigram
EDGE = "_"
#: the shortest word that gives trigrams of its own
SHORTEST = 3


def _spaced(term: str) -> bool:
    return _UNSPACED.search(term) is None


def subwords(words: Sequence[str]) -> list[str]:
    """The trigrams of ``words`` (the terms of one text, in order), repeats kept."""
    out: list[str] = []
    before = ""
    for word in words:
        if not _spaced(word):
            before = ""
            continue
        if len(word) >= SHORTEST:
            padded = EDGE + word + EDGE
            out.extend(padded[n : n + 3] for n in range(len(padded) - 2))
        if before:
            joined = before[-2:] + word[:2]
            out.extend(joined[n : n + 3] for n in range(len(joined) - 2))
        before = word
    return out


def query_subwords(words: Sequence[str], limit: int = 96) -> list[str]:
    """The distinct trigrams of a query's terms, in order, at most ``limit``."""
    return list(dict.fromkeys(subwords(words)))[:limit]
