"""Speaker labels on transcripts, turn-aware chunks, and transcripts as srt, vtt and text."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ragcast.exports.transcript import render, transcript_dict
from ragcast.pipeline.chunk import chunk_transcript
from ragcast.pipeline.speakers import (
    assign_speakers,
    display_names,
    label_transcript,
    overlapped,
    split_speakers,
)
from ragcast.pipeline.types import ChunkSpec, Segment, Transcript, Word
from ragcast.providers.diarizers.base import Diarization, Turn


class WordCounter:
    """One token per whitespace-separated word: sizes are easy to reason about."""

    def count(self, texts: Sequence[str]) -> list[int]:
        return [len(t.split()) for t in texts]


def _words(text: str, start: float, step: float = 0.5) -> list[Word]:
    return [Word(w, start + n * step, start + n * step + 0.4) for n, w in enumerate(text.split())]


def _transcript() -> Transcript:
    # one Whisper segment that runs across a change of speaker at 3.0 s
    first = _words("hello there. how are you", 0.0) + _words("fine thanks. and you?", 3.0)
    second = _words("good good very good", 6.0)
    return Transcript(
        source="asr",
        language="en",
        duration_s=8.0,
        segments=[
            Segment(" ".join(w.text for w in first), 0.0, 4.9, first),
            Segment(" ".join(w.text for w in second), 6.0, 7.9, second),
        ],
    )


TURNS = [Turn(0.0, 2.9, "SPEAKER_01"), Turn(2.9, 5.5, "SPEAKER_00"), Turn(5.9, 8.0, "SPEAKER_01")]


def test_segments_split_where_the_speaker_changes_and_labels_follow_first_words() -> None:
    t = assign_speakers(_transcript(), TURNS)
    assert [(s.speaker, s.text) for s in t.segments] == [
        ("SPEAKER_00", "hello there. how are you"),
        ("SPEAKER_01", "fine thanks. and you?"),
        ("SPEAKER_00", "good good very good"),
    ]
    assert t.speakers == ["SPEAKER_00", "SPEAKER_01"]  # renumbered: first to speak is 00
    assert all(w.speaker == s.speaker for s in t.segments for w in s.words)
    assert t.segments[1].start == 3.0 and t.segments[0].end == 2.4


def test_no_turns_means_no_speakers_and_far_words_stay_unlabelled() -> None:
    t = assign_speakers(_transcript(), [])
    assert t.speakers == [] and all(s.speaker is None for s in t.segments)
    far = assign_speakers(_transcript(), [Turn(0.0, 1.0, "SPEAKER_00")])
    assert far.segments[-1].speaker is None and far.speakers == ["SPEAKER_00"]


def test_unspaced_languages_rejoin_split_words_without_spaces() -> None:
    words = [Word("你", 0.0, 0.4), Word("好", 0.5, 0.9), Word("再", 3.0, 3.4), Word("见", 3.5, 3.9)]
    t = Transcript("asr", "zh", 4.0, [Segment("你好再见", 0.0, 3.9, words)])
    out = assign_speakers(t, [Turn(0, 2, "SPEAKER_00"), Turn(2, 4, "SPEAKER_01")])
    assert [s.text for s in out.segments] == ["你好", "再见"]


def test_the_round_trip_through_the_store_keeps_speakers() -> None:
    t = assign_speakers(_transcript(), TURNS)
    again = Transcript.from_dict(t.to_dict())
    assert again.speakers == t.speakers and again.segments == t.segments
    old = Transcript.from_dict(
        {
            "source": "asr",
            "language": "en",
            "duration_s": 1.0,
            "segments": [
                {
                    "text": "hi",
                    "start": 0,
                    "end": 1,
                    "words": [{"text": "hi", "start": 0, "end": 1}],
                }
            ],
        }
    )
    assert old.speakers is None and old.segments[0].speaker is None


def test_chunks_end_at_a_change_of_speaker_and_name_their_main_speaker() -> None:
    t = assign_speakers(_transcript(), TURNS)
    spec = ChunkSpec(chunk_size=7, chunk_overlap=2, max_tokens=100)
    chunks = chunk_transcript(t, spec, WordCounter(), reserve=0)
    # without speakers the first chunk ends at the sentence end "thanks.", across the turn;
    # a chunk that ends at a turn is not overlapped by the next one
    assert [c.text for c in chunks] == [
        "hello there. how are you",
        "fine thanks. and you?",
        "good good very good",
    ]
    assert [c.speakers for c in chunks] == [["SPEAKER_00"], ["SPEAKER_01"], ["SPEAKER_00"]]
    plain = chunk_transcript(_transcript(), spec, WordCounter(), reserve=0)
    assert plain[0].text == "hello there. how are you fine thanks." and plain[0].speakers == []
    assert plain[0].speaker is None


def test_a_chunk_with_two_speakers_lists_the_one_with_most_words_first() -> None:
    t = assign_speakers(_transcript(), TURNS)
    spec = ChunkSpec(chunk_size=40, chunk_overlap=0, max_tokens=100)
    (chunk,) = chunk_transcript(t, spec, WordCounter(), reserve=0)
    assert chunk.speakers == ["SPEAKER_00", "SPEAKER_01"] and chunk.speaker == "SPEAKER_00"


def test_transcripts_render_with_names_or_labels() -> None:
    t = assign_speakers(_transcript(), TURNS)
    names = {"SPEAKER_01": "Guest <b>"}
    srt = render(t, names, "srt")
    assert srt.startswith(
        "1\n00:00:00,000 --> 00:00:02,400\nSPEAKER_00: hello there. how are you\n"
    )
    assert "2\n00:00:03,000 --> 00:00:04,900\nGuest <b>: fine thanks. and you?\n" in srt
    vtt = render(t, names, "vtt")
    assert vtt.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:02.400\n<v SPEAKER_00>hello")
    assert "<v Guest &lt;b&gt;>fine thanks." in vtt
    assert render(t, names, "txt") == (
        "SPEAKER_00: hello there. how are you\n\nGuest <b>: fine thanks. and you?\n\n"
        "SPEAKER_00: good good very good\n"
    )
    body = transcript_dict(t, names)
    assert body["speakers"] == [
        {"label": "SPEAKER_00", "name": "SPEAKER_00", "recognised": None},
        {"label": "SPEAKER_01", "name": "Guest <b>", "recognised": None},
    ]
    assert body["overlaps"] == []
    assert body["segments"][1]["words"][0] == {
        "text": "fine",
        "start": 3.0,
        "end": 3.4,
        "speaker": "Guest <b>",
    }


def test_untimed_documents_render_and_hours_are_written_out() -> None:
    doc = Transcript("document", None, None, [Segment("First para."), Segment("Second.")])
    assert render(doc, None, "txt") == "First para.\nSecond.\n"
    assert "00:00:00,000 --> 00:00:00,000\nFirst para." in render(doc, None, "srt")
    long = Transcript("asr", "en", 4000.0, [Segment("late", 3723.5, 3725.25)])
    assert "01:02:03,500 --> 01:02:05,250" in render(long, None, "srt")


def test_speaker_lists_join_and_split() -> None:
    assert display_names(["SPEAKER_00", "SPEAKER_01"], {"SPEAKER_01": "B"}) == ["SPEAKER_00", "B"]
    assert split_speakers("A; SPEAKER_01") == ["A", "SPEAKER_01"]
    assert split_speakers(None) == [] and split_speakers("") == []


def test_an_unlabelled_first_word_does_not_hide_a_later_change_of_speaker() -> None:
    words = [Word("uh", None, None), *_words("hello", 3.0), *_words("there friend", 8.0)]
    t = Transcript("asr", "en", 10.0, [Segment("uh hello there friend", 0.0, 9.0, words)])
    turns = [Turn(2.5, 5.0, "SPEAKER_00"), Turn(7.5, 10.0, "SPEAKER_01")]
    out = assign_speakers(t, turns)
    assert [(s.speaker, s.text) for s in out.segments] == [
        ("SPEAKER_00", "uh hello"),
        ("SPEAKER_01", "there friend"),
    ]


def _turns_transcript(*parts: tuple[str, str]) -> Transcript:
    """One segment per part, 0.5 s a word, each part spoken by its speaker."""
    segments, at = [], 0.0
    for text, _ in parts:
        words = _words(text, at)
        segments.append(Segment(text, at, words[-1].end, words))
        at = words[-1].end + 0.1
    return Transcript(source="asr", language="en", duration_s=at, segments=segments)


def _part_turns(t: Transcript, parts: tuple[tuple[str, str], ...]) -> list[Turn]:
    return [Turn(s.start, s.end, who) for s, (_, who) in zip(t.segments, parts, strict=True)]


def test_a_turn_that_stands_alone_is_a_chunk_of_its_own_however_roomy_the_chunk() -> None:
    # an 8-word turn, then 20 words of another speaker: one chunk of 64 would hold both
    parts = (("ask not what your country can do for you", "A"), (" ".join(["word"] * 20), "B"))
    t = _turns_transcript(*parts)
    t = assign_speakers(t, _part_turns(t, parts))
    spec = ChunkSpec(chunk_size=64, chunk_overlap=8, max_tokens=100)
    chunks = chunk_transcript(t, spec, WordCounter(), reserve=0)
    assert chunks[0].text == "ask not what your country can do for you"
    assert [c.speakers for c in chunks] == [["SPEAKER_00"], ["SPEAKER_01"]]
    assert chunks[1].start_s == t.segments[1].start  # no overlap back across the turn


def test_a_turn_too_short_to_stand_alone_joins_its_neighbour_and_is_listed() -> None:
    parts = (
        ("we measured the tides every morning at six", "A"),
        ("right", "B"),
        ("and again at noon when the water was lowest", "A"),
    )
    t = _turns_transcript(*parts)
    t = assign_speakers(t, _part_turns(t, parts))
    spec = ChunkSpec(chunk_size=64, chunk_overlap=0, max_tokens=100)
    (chunk,) = chunk_transcript(t, spec, WordCounter(), reserve=0)
    assert chunk.speakers == ["SPEAKER_00", "SPEAKER_01"]
    # a short first turn joins the turn after it
    parts = (("yes", "B"), ("we measured the tides every morning at six", "A"))
    t = _turns_transcript(*parts)
    t = assign_speakers(t, _part_turns(t, parts))
    (chunk,) = chunk_transcript(t, spec, WordCounter(), reserve=0)
    assert chunk.speakers == ["SPEAKER_01", "SPEAKER_00"]


def test_overlapped_stretches_are_found_between_overlapping_turns() -> None:
    turns = [Turn(0.0, 3.0, "A"), Turn(2.0, 5.0, "B"), Turn(4.9, 6.0, "A")]
    assert overlapped(turns) == [(2.0, 3.0, ["A", "B"])]  # 4.9-5.0 is too short to list


def test_a_word_in_overlap_goes_to_the_most_active_speaker_and_voices_follow_labels() -> None:
    words = _words("one two three four five six", 0.0)  # 0.0-2.9 s
    t = Transcript("asr", "en", 3.0, [Segment("one two three four five six", 0.0, 2.9, words)])
    # "X" talks throughout; "Y" over 1.0-2.0 s, louder than X there
    activity = np.zeros((300, 2), dtype=np.float32)
    activity[:, 0] = 0.6
    activity[100:200, 1] = 0.9
    found = Diarization(
        turns=[Turn(0.0, 3.0, "X"), Turn(1.0, 2.0, "Y")],
        duration_s=3.0,
        speakers=["X", "Y"],
        centroids={"X": [1.0, 0.0], "Y": [0.0, 1.0]},
        embedding_model="test-space",
        activity=activity,
        frame_s=0.01,
    )
    out = label_transcript(t, found)
    said = [(w.text, w.speaker) for s in out.segments for w in s.words]
    assert said == [
        ("one", "SPEAKER_00"),
        ("two", "SPEAKER_00"),
        ("three", "SPEAKER_01"),  # 1.0-1.4 s, inside Y's turn
        ("four", "SPEAKER_01"),
        ("five", "SPEAKER_00"),
        ("six", "SPEAKER_00"),
    ]
    assert out.overlaps == [{"start": 1.0, "end": 2.0, "speakers": ["SPEAKER_00", "SPEAKER_01"]}]
    assert out.voices is not None and out.voices["SPEAKER_01"]["vector"] == [0.0, 1.0]
    assert out.voices["SPEAKER_00"]["speech_s"] == 3.0 and out.voice_model == "test-space"
    again = Transcript.from_dict(out.to_dict())
    assert again.overlaps == out.overlaps and again.voices == out.voices
