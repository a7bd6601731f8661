"""Terms for the lexical index, the same for every language and both index engines.

Text is NFKC-normalised and case-folded, then cut into runs of letters and digits.
Scripts written without spaces (Chinese, Japanese kana and kanji, Korean, Thai, Lao,
Khmer, Myanmar) have no words to cut at, so a run of them becomes its overlapping
character bigrams (a lone character stays a unigram): "广州市房地产" ->
"广州 州市 市房 房地 地产". Bigrams are what CJK search engines index when they have no
dictionary, and they match any query word of two or more characters wherever it sits.
Diacritics are kept: Swedish å and a are different letters. Chinese is folded to one
script first (traditional characters written simplified, :func:`ragcast.text.fold_chinese`),
so ``廣州`` and ``广州`` are the same term and either script finds both.
"""

from __future__ import annotations

import re
import unicodedata

from ragcast.text import fold_chinese

#: scripts written without spaces between words
_UNSPACED = (
    "\u0e00-\u0eff"  # Thai, Lao
    "\u1000-\u109f"  # Myanmar
    "\u1780-\u17ff"  # Khmer
    "\u3040-\u30ff"  # Hiragana, Katakana
    "\u3400-\u4dbf"  # CJK Extension A
    "\u4e00-\u9fff"  # CJK Unified Ideographs
    "\uac00-\ud7af"  # Hangul syllables
    "\uf900-\ufaff"  # CJK compatibility ideographs
    "\U00020000-\U0002ffff"  # CJK Extensions B-F
)
_RUN = re.compile(rf"[{_UNSPACED}]+|[^\W_{_UNSPACED}]+")
_IS_UNSPACED = re.compile(rf"[{_UNSPACED}]")
#: longest term kept (a hash, a URL fragment or a base64 run only bloats the index)
MAX_TERM = 40


def terms(text: str) -> list[str]:
    """The index terms of ``text``, in order, repeats kept (they count as frequency)."""
    out: list[str] = []
    folded = fold_chinese(unicodedata.normalize("NFKC", text).casefold())
    for run in _RUN.findall(folded):
        if _IS_UNSPACED.match(run):
            if len(run) == 1:
                out.append(run)
            else:
                out.extend(run[n : n + 2] for n in range(len(run) - 1))
        elif len(run) <= MAX_TERM:
            out.append(run)
    return out


def query_terms(text: str, limit: int = 32) -> list[str]:
    """The distinct terms of a query, in order, at most ``limit``."""
    return list(dict.fromkeys(terms(text)))[:limit]
