"""Answers without a server: sentences, extractive picks, citation checks, the prompt."""

from __future__ import annotations

from collections.abc import Iterator

from ragcast.providers.llms.base import Llm, Message
from ragcast.retrieval.answers import (
    CitationGate,
    check_citations,
    extractive,
    generative,
    numbered,
    question_language,
    sentences,
    stream_generative,
)
from ragcast.retrieval.prompt import messages
from ragcast.retrieval.types import Hit


def hit(text: str, score: float, content: str = "c1", title: str = "talk.wav") -> Hit:
    meta = {"content_id": content, "title": title, "start_s": 12.0, "end_s": 19.5}
    return Hit(score=score, text=text, metadata=meta)


def test_sentences_split_on_latin_and_cjk_ends() -> None:
    assert sentences("One. Two! Three? Four") == ["One.", "Two!", "Three?", "Four"]
    assert sentences("广州市。房地产！分析") == ["广州市。", "房地产！", "分析"]
    assert sentences("no end at all") == ["no end at all"]
    assert sentences("Mr. Quilter came. J. Smith left.") == ["Mr. Quilter came.", "J. Smith left."]


def test_extractive_quotes_the_answering_sentence_with_its_number() -> None:
    sources = numbered(
        [
            hit("The weather was fine. Mr. Quilter is the apostle of the middle classes.", 0.6),
            hit("Nothing here about that.", 0.35, "c2"),
            hit("Too weak to use.", 0.03, "c3"),
        ]
    )
    assert [s.n for s in sources] == [1, 2]
    answer = extractive("Who is the apostle of the middle classes?", sources, "en")
    assert answer.answered and answer.mode == "extractive" and answer.model is None
    assert answer.answer.startswith("Mr. Quilter is the apostle of the middle classes. [1]")
    assert "[2]" not in answer.answer and [c.n for c in answer.citations] == [1]


def test_nothing_relevant_is_declined_in_the_question_language() -> None:
    sources = numbered([hit("Unrelated.", 0.05)])
    assert sources == []
    answer = extractive("Was ist die Hauptstadt?", sources, question_language("x", "de"))
    assert not answer.answered and answer.citations == []
    assert "Aufnahmen" in answer.answer
    assert question_language("电球はどこ?") == "ja" and question_language("广州在哪里") == "zh"


def test_citations_naming_no_passage_are_dropped() -> None:
    text, cited = check_citations("A [1]. B [9]. C [2, 7][1].", {1, 2})
    assert text == "A [1]. B. C [2][1]." and cited == [1, 2]


def test_the_stream_gate_holds_brackets_until_they_are_known() -> None:
    gate = CitationGate({1})
    pieces = ["Yes [", "1", "] no [", "9", "]. a [b] [1"]
    shown = "".join(gate.feed(p) for p in pieces) + gate.flush()
    assert shown == "Yes [1] no . a [b] [1"


class Scripted(Llm):
    """An LLM that says what it is told (the real client is tested against a server)."""

    name = "scripted"

    def __init__(self, reply: str) -> None:
        self.reply = reply
        self.seen: list[list[Message]] = []

    def complete(self, messages: list[Message], *, max_tokens: int = 512) -> str:
        self.seen.append(messages)
        return self.reply

    def stream(self, messages: list[Message], *, max_tokens: int = 512) -> Iterator[str]:
        self.seen.append(messages)
        yield from (self.reply[n : n + 2] for n in range(0, len(self.reply), 2))


def test_generative_checks_what_the_model_cites() -> None:
    sources = numbered([hit("Ask what you can do for your country.", 0.7)])
    llm = Scripted("Do for your country [1][4].")
    answer = generative(llm, "What should citizens ask?", sources, "en")
    assert answer.answer == "Do for your country [1]." and [c.n for c in answer.citations] == [1]
    prompt = llm.seen[0]
    assert (
        "[1] talk.wav (0:12-0:19)" in prompt[1].content and "Answer in English" in prompt[0].content
    )
    declined = generative(Scripted("It is not in your recordings."), "x?", sources, "en")
    assert not declined.answered and declined.citations == []
    events = list(stream_generative(llm, "What?", sources, "en"))
    shown = "".join(str(v) for k, v in events if k == "delta")
    assert shown == "Do for your country [1]." and events[-1][0] == "done"


def test_the_prompt_fits_its_budget() -> None:
    long = " ".join(["word"] * 5000)
    sources = numbered([hit(long, 0.9), hit("second passage", 0.8, "c2")])
    prompt = messages("q?", sources, "de", budget=300)
    assert len(prompt[1].content) < 300 * 4 + 200 and "…" in prompt[1].content
    assert "[2]" not in prompt[1].content and "Answer in German" in prompt[0].content


def test_the_sentence_after_an_echo_of_the_question_comes_with_it() -> None:
    text = "It was the first great sorrow of his life. It was not so much the loss of the cotton."
    sources = numbered([hit(text, 0.7), hit("Sorrow was elsewhere too.", 0.2, "c2")])
    answer = extractive("What was the first great sorrow of his life?", sources, "en")
    assert answer.answer == (
        "It was the first great sorrow of his life. [1] "
        "It was not so much the loss of the cotton. [1]"
    )
    assert [c.n for c in answer.citations] == [1]
