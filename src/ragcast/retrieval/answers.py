"""Answers cited to the moment: the best passages of a search, and an answer built on them.

Two modes. **Extractive** (no LLM, works offline): the sentences of the best passages
that answer the question, verbatim, each followed by the ``[n]`` of its passage; a
sentence is scored by the share of the question's terms it holds plus its passage's
search score. **Generative**: an LLM answers from the numbered passages
(:mod:`ragcast.retrieval.prompt`); every ``[n]`` it writes is checked here, and one that
names no passage it was given is dropped from the text, never shown.

Passages under the relevance floor (:data:`RELEVANT`, measured by ``python -m bench
answers``) are not used; when none is left the question is declined with a plain "not in
your recordings" rather than a guess.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

from ragcast.providers.llms.base import Llm, LlmUnavailable
from ragcast.retrieval.prompt import messages
from ragcast.retrieval.tokenize import query_terms, terms
from ragcast.retrieval.types import Hit

AnswerMode = Literal["extractive", "generative"]

#: the least search score (0-1) of a passage an answer may use: the bench's questions
#: that nothing answers score under it, those that something answers over it
RELEVANT = 0.06
#: sentences an extractive answer quotes, at most
MOST_SENTENCES = 3
#: a sentence is quoted when it scores at least this share of the best one's score
NEAR_BEST = 0.8
#: tokens the LLM may write
ANSWER_TOKENS = 512

#: sentence ends: . ! ? (then a space or the end), and the CJK 。！？ (no space follows)
_SENTENCE = re.compile(r"(?<=[.!?…])\s+|(?<=[。！？])")
#: words whose full stop ends no sentence
_ABBREVIATION = re.compile(
    r"(?:^|\s)(?:mr|mrs|ms|dr|prof|st|vs|etc|nr|jr|sr|[a-z])\.$", re.IGNORECASE
)
#: ``[3]``, ``[1, 2]`` and ``[1][2]`` as models write them
_CITE = re.compile(r"\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]")
#: words too common to say what a question is about (English, German, Swedish, French)
_STOP = frozenset(
    """a an and are as at be by did do does for from had has have he her his how i in is it
    its me my no not of on or our she so that the their them then there they this to was we
    were what when where which who whom why will with you your about said say says
    der die das und ist ein eine einer wer was wie wo warum den dem des im zu von mit sich
    och är en ett vad vem var hur det att som på av för med
    le la les un une des est et qui que quoi où de du en""".split()
)

#: "not in your recordings", by the language of the question
DECLINE = {
    "en": "I could not find that in your recordings.",
    "de": "Das habe ich in Ihren Aufnahmen nicht gefunden.",
    "sv": "Det hittade jag inte i dina inspelningar.",
    "fr": "Je n'ai pas trouvé cela dans vos enregistrements.",
    "es": "No encontré eso en sus grabaciones.",
    "zh": "在您的录音中没有找到相关内容。",
    "ja": "録音の中にそれは見つかりませんでした。",
}


@dataclass(slots=True)
class Source:
    """A numbered passage an answer may cite: ``n`` is the ``[n]`` that names it."""

    n: int
    hit: Hit

    @property
    def text(self) -> str:
        """The passage: the hit with its neighbouring chunks where asked for."""
        return self.hit.context.text if self.hit.context is not None else self.hit.text


@dataclass(slots=True)
class Answer:
    """An answer and the passages it cites (only those, by the numbers in its text)."""

    answered: bool
    answer: str
    mode: AnswerMode
    model: str | None
    citations: list[Source] = field(default_factory=list)


def numbered(hits: Sequence[Hit], floor: float = RELEVANT) -> list[Source]:
    """The hits over the relevance floor, numbered from 1 in their order."""
    return [Source(n, h) for n, h in enumerate((h for h in hits if h.score >= floor), 1)]


def question_language(question: str, fallback: str | None = None) -> str:
    """The language to answer in: Japanese where kana is written, Chinese for other Han
    script, else ``fallback`` (the request's), else English."""
    if re.search(r"[\u3040-\u30ff]", question):
        return "ja"
    if re.search(r"[\u4e00-\u9fff]", question):
        return "zh"
    return fallback or "en"


def declined(language: str, mode: AnswerMode, model: str | None = None) -> Answer:
    """The plain answer when nothing relevant was found."""
    return Answer(False, DECLINE.get(language, DECLINE["en"]), mode, model)


def sentences(text: str) -> list[str]:
    """``text`` cut into sentences at . ! ? and 。！？ (a text without any is one); a
    title or an initial (``Mr.``, ``J.``) does not end one."""
    out: list[str] = []
    for piece in (s.strip() for s in _SENTENCE.split(text)):
        if not piece:
            continue
        if out and _ABBREVIATION.search(out[-1]):
            out[-1] = f"{out[-1]} {piece}"
        else:
            out.append(piece)
    return out


def _key_terms(question: str) -> set[str]:
    return {t for t in query_terms(question) if t not in _STOP}


def extractive(question: str, sources: Sequence[Source], language: str) -> Answer:
    """The best sentences of the best passages, verbatim, each followed by its ``[n]``."""
    if not sources:
        return declined(language, "extractive")
    wanted = _key_terms(question)
    scored: list[tuple[float, int, int, str]] = []  # (score, n, position, sentence)
    by_score = {source.n: source.hit.score for source in sources}
    for source in sources[:MOST_SENTENCES]:
        for position, sentence in enumerate(sentences(source.hit.text)):
            have = set(terms(sentence))
            overlap = len(wanted & have) / len(wanted) if wanted else 0.0
            scored.append((overlap + source.hit.score, source.n, position, sentence))
    if not scored:
        return declined(language, "extractive")
    scored.sort(key=lambda s: (-s[0], s[1], s[2]))
    best = scored[0][0]
    top = scored[0][1]
    # sentences of other passages only where they share the question's terms
    kept = [
        s
        for s in scored[:MOST_SENTENCES]
        if s[0] >= NEAR_BEST * best and (s[1] == top or s[0] - by_score[s[1]] > 0)
    ]
    # A sentence that echoes the question is often followed by its answer ("It was the
    # first great sorrow of his life. It was not so much the loss of the cotton..."):
    # the best sentence brings the one after it.
    after = next((s for s in scored if s[1] == kept[0][1] and s[2] == kept[0][2] + 1), None)
    if after is not None and after not in kept:
        kept = [*kept[: MOST_SENTENCES - 1], after]
    kept.sort(key=lambda s: (s[1], s[2]))  # in the order they were said
    text = " ".join(f"{sentence} [{n}]" for _, n, _, sentence in kept)
    cited = sorted({n for _, n, _, _ in kept})
    by_n = {s.n: s for s in sources}
    return Answer(True, text, "extractive", None, [by_n[n] for n in cited])


def check_citations(text: str, known: set[int]) -> tuple[str, list[int]]:
    """``text`` without the ``[n]`` that name no known passage, and the cited numbers in
    order of first citation. ``[1, 2]`` is written ``[1][2]``."""
    cited: list[int] = []

    def keep(match: re.Match[str]) -> str:
        ns = [int(x) for x in match.group(1).split(",")]
        good = [n for n in ns if n in known]
        cited.extend(n for n in good if n not in cited)
        return "".join(f"[{n}]" for n in good)

    cleaned = _CITE.sub(keep, text)
    cleaned = re.sub(r"[ \t]+([.,;:!?。！？])", r"\1", cleaned)  # "fact [9]." -> "fact."
    return re.sub(r"[ \t]{2,}", " ", cleaned).strip(), cited


def generative(
    llm: Llm, question: str, sources: Sequence[Source], language: str, budget: int | None = None
) -> Answer:
    """The LLM's answer from the numbered passages, its citations checked."""
    if not sources:
        return declined(language, "generative", llm.name)
    prompt = messages(question, sources, language, budget or _budget(llm))
    text = llm.complete(prompt, max_tokens=ANSWER_TOKENS)
    return _finished(text, sources, language, llm.name)


def _budget(llm: Llm) -> int:
    """Tokens the passages may take: the model's context less the answer and instructions."""
    return max(256, llm.context_tokens - ANSWER_TOKENS - 400)


def _finished(text: str, sources: Sequence[Source], language: str, model: str) -> Answer:
    cleaned, cited = check_citations(text, {s.n for s in sources})
    if not cited:  # an answer that cites nothing is not an answer from the recordings
        return Answer(False, cleaned or DECLINE.get(language, DECLINE["en"]), "generative", model)
    by_n = {s.n: s for s in sources}
    return Answer(True, cleaned, "generative", model, [by_n[n] for n in sorted(cited)])


Event = tuple[str, object]


def stream_generative(
    llm: Llm, question: str, sources: Sequence[Source], language: str
) -> Iterator[Event]:
    """``("delta", text)`` pieces of the LLM's answer with unknown ``[n]`` held back and
    dropped, then ``("done", Answer)``. :class:`LlmUnavailable` before the first piece
    propagates (the caller may fall back); after it, the answer ends with what came."""
    if not sources:
        yield "done", declined(language, "generative", llm.name)
        return
    prompt = messages(question, sources, language, _budget(llm))
    gate = CitationGate({s.n for s in sources})
    whole: list[str] = []
    for piece in llm.stream(prompt, max_tokens=ANSWER_TOKENS):
        whole.append(piece)
        out = gate.feed(piece)
        if out:
            yield "delta", out
    rest = gate.flush()
    if rest:
        yield "delta", rest
    yield "done", _finished("".join(whole), sources, language, llm.name)


class CitationGate:
    """Passes streamed text on, holding back a ``[...`` until it is known to cite a
    passage given (then passed) or not (then dropped)."""

    def __init__(self, known: set[int]) -> None:
        self.known = known
        self._held = ""

    def feed(self, piece: str) -> str:
        """What of ``piece`` (and what was held) can be shown now."""
        text = self._held + piece
        self._held = ""
        out: list[str] = []
        while text:
            start = text.find("[")
            if start < 0:
                out.append(text)
                break
            out.append(text[:start])
            end = text.find("]", start)
            if end < 0:
                if re.fullmatch(r"\[[\d,\s]{0,16}", text[start:]):
                    self._held = text[start:]  # may still become a citation
                else:
                    out.append(text[start:])
                break
            chunk = text[start : end + 1]
            out.append(check_citations(chunk, self.known)[0] if _CITE.fullmatch(chunk) else chunk)
            text = text[end + 1 :]
        return "".join(out)

    def flush(self) -> str:
        """What is still held at the end (an unfinished bracket is text)."""
        held, self._held = self._held, ""
        return held


__all__ = [
    "DECLINE",
    "RELEVANT",
    "Answer",
    "AnswerMode",
    "CitationGate",
    "LlmUnavailable",
    "Source",
    "check_citations",
    "declined",
    "extractive",
    "generative",
    "numbered",
    "question_language",
    "sentences",
    "stream_generative",
]
