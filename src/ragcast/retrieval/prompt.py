"""The generative answer's prompt: numbered passages with title and time span, and rules.

The model is told to answer only from the passages, to cite each claim with the ``[n]``
of its passage, to say plainly when the passages do not answer, and to answer in the
question's language. The passages are cut to a budget of tokens (estimated at four
characters a token, two for scripts written without spaces): the best come first and a
passage that does not fit whole is shortened, then the rest are left out.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

from ragcast.providers.llms.base import Message
from ragcast.retrieval.types import Hit


class Source(Protocol):
    """A numbered passage (:class:`ragcast.retrieval.answers.Source`)."""

    n: int
    hit: Hit

    @property
    def text(self) -> str:
        """The passage's text."""
        ...


LANGUAGES = {
    "en": "English",
    "de": "German",
    "sv": "Swedish",
    "fr": "French",
    "es": "Spanish",
    "zh": "Chinese",
    "ja": "Japanese",
}
#: the reply that means "the passages do not answer"
NOT_FOUND = "It is not in your recordings."

_WIDE = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")


def estimate_tokens(text: str) -> int:
    """A cautious token count: four characters a token, CJK characters one each."""
    wide = len(_WIDE.findall(text))
    return wide + (len(text) - wide) // 4 + 1


def clock(seconds: float | None) -> str:
    """``1:02:03`` or ``2:03``; ``?`` where unknown."""
    if seconds is None:
        return "?"
    s = int(seconds)
    h, m = divmod(s, 3600)
    m, s = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def system(language: str) -> str:
    """The rules of the answer."""
    name = LANGUAGES.get(language, language)
    return (
        "You answer questions about the user's recordings using only the numbered "
        "passages you are given, which are transcripts of those recordings. "
        "Cite every statement with the number of the passage it comes from, in square "
        "brackets, like [1] or [2][3]. Use no knowledge beyond the passages and cite no "
        "number that is not given. If the passages do not answer the question, reply "
        f'only: "{NOT_FOUND}" (in {name}). Be brief. Answer in {name}.'
    )


def passages(sources: Sequence[Source], budget: int) -> str:
    """The numbered passages, best first, cut to ``budget`` tokens."""
    blocks: list[str] = []
    left = budget
    for source in sources:
        m = source.hit.metadata
        title = m.get("title") or m.get("source") or m.get("content_id") or "recording"
        span = f"{clock(m.get('start_s'))}-{clock(m.get('end_s'))}"
        if source.hit.context is not None:
            span = f"{clock(source.hit.context.start_s)}-{clock(source.hit.context.end_s)}"
        head = f"[{source.n}] {title} ({span})"
        text = source.text
        need = estimate_tokens(head) + estimate_tokens(text) + 2
        if need > left:
            room = left - estimate_tokens(head) - 2
            if room < 32:
                break
            blocks.append(f"{head}\n{_shortened(text, room)}")
            break  # the budget is spent
        blocks.append(f"{head}\n{text}")
        left -= estimate_tokens(blocks[-1]) + 2
    return "\n\n".join(blocks)


def _shortened(text: str, tokens: int) -> str:
    """The start of ``text`` within ``tokens``, cut at a word where there is one."""
    cut = text
    while cut and estimate_tokens(cut) > tokens:
        cut = cut[: int(len(cut) * 0.8)]
    head, _, _ = cut.rpartition(" ")
    return (head or cut) + " …"


def messages(question: str, sources: Sequence[Source], language: str, budget: int) -> list[Message]:
    """The chat messages of a generative answer."""
    user = f"Passages:\n\n{passages(sources, budget)}\n\nQuestion: {question}"
    return [Message("system", system(language)), Message("user", user)]
