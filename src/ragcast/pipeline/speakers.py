"""Speaker labels on a transcript: from diarization turns to words, segments and names."""

from __future__ import annotations

import unicodedata
from bisect import bisect_left
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from ragcast.errors import MediaError
from ragcast.pipeline.types import Segment, Transcript, Word
from ragcast.providers.diarizers.base import Turn
from ragcast.retrieval.records import (
    SPEAKER_SEPARATOR,
    display_name,
    display_names,
    speaker_fields,
    split_speakers,
)
from ragcast.text import join_words

#: the most characters a speaker's name may have
NAME_MAX = 64
#: Unicode categories a name may not contain: controls (line breaks, tabs), invisible
#: format characters (U+200B, U+FEFF, the bidirectional overrides U+202E...),
#: surrogates, and the line and paragraph separators
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
#: what separates an SRT or WebVTT cue's times: in a name it would forge a cue
CUE_ARROW = "-->"

__all__ = [
    "SPEAKER_SEPARATOR",
    "assign_speakers",
    "display_name",
    "display_names",
    "load_audio",
    "name_issue",
    "speaker_fields",
    "split_speakers",
]

#: a word further than this from every turn gets no speaker
_REACH_S = 1.0


def assign_speakers(transcript: Transcript, turns: Sequence[Turn]) -> Transcript:
    """``transcript`` with a speaker on every timed word and segment.

    A word takes the turn it overlaps most (or the nearest within a second); a segment
    whose words change speaker is split there, so each segment has one speaker. Labels
    are renumbered in order of first appearance in the transcript (``SPEAKER_00`` speaks
    first), and ``speakers`` lists them; a transcript without turns gets none.
    """
    if not turns:
        transcript.speakers = []
        return transcript
    turns = sorted(turns, key=lambda t: t.start)
    ends = [t.end for t in turns]
    segments: list[Segment] = []
    for segment in transcript.segments:
        if segment.words:
            for word in segment.words:
                word.speaker = _speaker_at(turns, ends, word.start, word.end)
            segments.extend(_split(segment))
        else:
            segment.speaker = _speaker_at(turns, ends, segment.start, segment.end)
            segments.append(segment)
    order = _renumber(segments)
    transcript.segments = segments
    transcript.speakers = list(order.values())
    return transcript


def _speaker_at(
    turns: Sequence[Turn], ends: list[float], start: float | None, end: float | None
) -> str | None:
    """The speaker of ``[start, end]`` among time-ordered ``turns`` (``ends``: their end
    times): the turn it overlaps most, else the nearest within ``_REACH_S``; found by
    bisection, so hours of words against thousands of turns stay cheap."""
    if start is None or end is None:
        return None
    best, overlap = None, 0.0
    for turn in turns[bisect_left(ends, start) :]:
        if turn.start > end:
            break
        shared = min(end, turn.end) - max(start, turn.start)
        if shared > overlap:
            best, overlap = turn.speaker, shared
    if best is not None:
        return best
    middle = (start + end) / 2
    at = bisect_left(ends, middle)
    near = turns[max(0, at - 1) : at + 2]
    distance, nearest = min((max(t.start - middle, middle - t.end), t.speaker) for t in near)
    return nearest if distance <= _REACH_S else None


def _split(segment: Segment) -> list[Segment]:
    """One segment per run of words of the same speaker (unlabelled words join a run)."""
    runs: list[list[Word]] = []
    for word in segment.words:
        # the run's speaker is its first labelled word's (unlabelled words join any run)
        current = next((w.speaker for w in runs[-1] if w.speaker), None) if runs else None
        if runs and (word.speaker is None or word.speaker == current or current is None):
            runs[-1].append(word)
        else:
            runs.append([word])
    if len(runs) == 1:
        segment.speaker = next((w.speaker for w in segment.words if w.speaker), None)
        return [segment]
    return [
        Segment(
            text=join_words(w.text.strip() for w in run),
            start=run[0].start,
            end=run[-1].end,
            words=run,
            speaker=next((w.speaker for w in run if w.speaker), None),
        )
        for run in runs
    ]


def _renumber(segments: list[Segment]) -> dict[str, str]:
    order: dict[str, str] = {}
    for segment in segments:
        for label in [segment.speaker, *(w.speaker for w in segment.words)]:
            if label is not None and label not in order:
                order[label] = f"SPEAKER_{len(order):02d}"
    for segment in segments:
        segment.speaker = order.get(segment.speaker or "")
        for word in segment.words:
            word.speaker = order.get(word.speaker or "")
    return order


def name_issue(name: str) -> str | None:
    """Why ``name`` cannot name a speaker, or None when it can (spaces are collapsed).

    A name is shown in transcripts (an SRT cue's prefix, a WebVTT voice), exports and
    search hits, so it must be one visible line: no control or format character, no
    line break, no ``-->`` (a cue's timing arrow), no ``;`` (it joins a chunk's
    speakers), and 1 to :data:`NAME_MAX` characters.
    """
    for char in name:
        if unicodedata.category(char) in _REFUSED_CATEGORIES:
            return (
                f"a name may not contain control, invisible or line-break characters "
                f"(U+{ord(char):04X})"
            )
    if CUE_ARROW in name:
        return f"a name may not contain {CUE_ARROW!r} (it would read as a subtitle cue's times)"
    if SPEAKER_SEPARATOR.strip() in name:
        return f"a name may not contain {SPEAKER_SEPARATOR.strip()!r}"
    if not 1 <= len(" ".join(name.split())) <= NAME_MAX:
        return f"a name has 1-{NAME_MAX} characters"
    return None


def load_audio(path: Path) -> NDArray[np.float32]:
    """The recording as 16 kHz mono float32; MediaError when it cannot be decoded."""
    from faster_whisper import decode_audio

    try:
        audio = decode_audio(str(path), sampling_rate=16_000)
    except Exception as exc:  # PyAV raises many kinds for a broken file
        raise MediaError(f"the recording could not be decoded for diarization: {exc}") from exc
    return np.asarray(audio, dtype=np.float32)
