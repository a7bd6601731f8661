"""Text as its script writes it: recogniser words joined, Chinese in one script.

Whisper's words carry no spaces of their own (the transcriber strips them), so joining
them is a rule of the script: Chinese, Japanese (kanji and kana), CJK punctuation and
full-width forms, Thai, Lao, Khmer and Myanmar are written without spaces between words;
Hangul and every other script are written with them. Whisper's own segment text is the
reference: ``廣州市佛地產``, ``キャンプの外れ``, ``Ask not, what``.

Chinese has two scripts. :func:`fold_chinese` maps every traditional character to its
simplified one, character by character (OpenCC's ``TSCharacters`` dictionary, shipped by
``opencc-python-reimplemented``), so the lexical index and a query meet in one script
whatever each was written in; :func:`to_script` converts text phrase by phrase (OpenCC's
``t2s`` and ``s2t``) for users who asked to read one script.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from functools import cache
from importlib import resources
from typing import Any, Literal

ChineseScript = Literal["as_spoken", "simplified", "traditional"]
#: the ``settings.chinese_script`` values
CHINESE_SCRIPTS: tuple[ChineseScript, ...] = ("as_spoken", "simplified", "traditional")
#: languages written in Chinese characters that a script choice converts
CHINESE_LANGUAGES = frozenset({"zh", "yue"})

#: characters written without a space between them and their neighbour of the same kind
TIGHT = (
    "\u0e00-\u0e7f"  # Thai
    "\u0e80-\u0eff"  # Lao
    "\u1000-\u109f"  # Myanmar
    "\u1780-\u17ff"  # Khmer
    "\u2e80-\u2fdf"  # CJK radicals, Kangxi radicals
    "\u3000-\u303f"  # CJK symbols and punctuation (、。「」)
    "\u3040-\u30ff"  # Hiragana, Katakana
    "\u3100-\u312f"  # Bopomofo
    "\u31f0-\u31ff"  # Katakana phonetic extensions
    "\u3200-\u33ff"  # enclosed CJK, CJK compatibility
    "\u3400-\u4dbf"  # CJK Extension A
    "\u4e00-\u9fff"  # CJK Unified Ideographs
    "\uf900-\ufaff"  # CJK compatibility ideographs
    "\ufe30-\ufe4f"  # CJK compatibility forms
    "\uff00-\uffef"  # full-width and half-width forms (，！ ｶ)
    "\U00020000-\U0003ffff"  # CJK Extensions B-H
)
_TIGHT = re.compile(f"[{TIGHT}]")


def tight(left: str, right: str) -> bool:
    """Whether ``right`` follows ``left`` without a space: both meet in unspaced script."""
    return bool(left and right and _TIGHT.match(left[-1]) and _TIGHT.match(right[0]))


def join_words(words: Iterable[str]) -> str:
    """``words`` (recogniser tokens, or segment texts) joined as their script writes them:
    no space between two unspaced-script characters, one space elsewhere."""
    out: list[str] = []
    for word in words:
        if not word:
            continue
        if out and not tight(out[-1], word):
            out.append(" ")
        out.append(word)
    return "".join(out)


@cache
def _folding() -> dict[int, str]:
    """Traditional character → its simplified one (the first OpenCC candidate)."""
    table: dict[int, str] = {}
    source = resources.files("opencc") / "dictionary" / "TSCharacters.txt"
    for line in source.read_text(encoding="utf-8").splitlines():
        key, _, values = line.partition("\t")
        if len(key) == 1 and values.split():
            table[ord(key)] = values.split()[0]
    return table


def fold_chinese(text: str) -> str:
    """``text`` with every traditional Chinese character written simplified.

    Character by character, so a word folds the same alone (a query) as inside a
    sentence (a chunk); other scripts pass unchanged, as does the length of the text.
    """
    return text.translate(_folding())


_converters: dict[str, Any] = {}
_converters_lock = threading.Lock()


def _converter(conversion: str) -> Any:
    with _converters_lock:
        if conversion not in _converters:
            from opencc import OpenCC

            _converters[conversion] = OpenCC(conversion)
        return _converters[conversion]


def to_script(text: str, script: ChineseScript) -> str:
    """``text`` written in ``script`` (``as_spoken`` leaves it as it is)."""
    if script == "as_spoken" or not text:
        return text
    return str(_converter("t2s" if script == "simplified" else "s2t").convert(text))
