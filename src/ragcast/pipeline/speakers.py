"""Speaker labels on a transcript: from diarization turns to words, segments and names."""

from __future__ import annotations

import unicodedata
from bisect import bisect_left
from collections.abc import Callable, Mapping, Sequence
from itertools import accumulate
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from ragcast.errors import MediaError
from ragcast.pipeline.types import Segment, Transcript, Word
from ragcast.providers.diarizers.base import Diarization, Turn
from ragcast.retrieval.records import (
    SPEAKER_SEPARATOR,
    display_name,
    display_names,
    speaker_fields,
    split_speakers,
)
from ragcast.store.models import Chunk, ChunkSpeaker
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
    "label_transcript",
    "display_names",
    "load_audio",
    "name_issue",
    "speaker_fields",
    "split_speakers",
]

#: a word further than this from every turn gets no speaker
_REACH_S = 1.0


def assign_speakers(
    transcript: Transcript,
    turns: Sequence[Turn],
    *,
    loudest: Callable[[float, float], str | None] | None = None,
) -> Transcript:
    """``transcript`` with a speaker on every timed word and segment.

    A word takes the turn it overlaps most (or the nearest within a second); where turns
    overlap (two people talking at once) and ``loudest`` is given, it names the speaker
    most active over the word's span, so a word goes to who said it where the diarizer
    can tell. A segment whose words change speaker is split there, so each segment has
    one speaker. Labels are renumbered in order of first appearance in the transcript
    (``SPEAKER_00`` speaks first), and ``speakers`` lists them; a transcript without
    turns gets none.
    """
    _assign(transcript, turns, loudest)
    return transcript


def label_transcript(transcript: Transcript, found: Diarization) -> Transcript:
    """``transcript`` labelled with a diarizer's answer: speakers on words and segments
    (:func:`assign_speakers`, overlap resolved by frame activity where the diarizer gives
    it), the overlapped stretches and each speaker's voice, under the transcript's labels."""
    order = _assign(
        transcript, found.turns, found.most_active if found.activity is not None else None
    )
    transcript.overlaps = [
        {"start": start, "end": end, "speakers": [order[x] for x in who if x in order]}
        for start, end, who in overlapped(found.turns)
        if sum(x in order for x in who) >= 2
    ]
    speech = _speech_by_label(found.turns)
    transcript.voices = {
        order[label]: {"vector": [round(float(v), 6) for v in vector], "speech_s": speech[label]}
        for label, vector in found.centroids.items()
        if label in order
    } or None
    transcript.voice_model = found.embedding_model if transcript.voices else None
    return transcript


def _assign(
    transcript: Transcript,
    turns: Sequence[Turn],
    loudest: Callable[[float, float], str | None] | None,
) -> dict[str, str]:
    """Label ``transcript`` from ``turns``; the diarizer's labels -> the transcript's."""
    if not turns:
        transcript.speakers = []
        return {}
    turns = sorted(turns, key=lambda t: t.start)
    ends = list(accumulate((t.end for t in turns), max))
    segments: list[Segment] = []
    for segment in transcript.segments:
        if segment.words:
            for word in segment.words:
                word.speaker = _speaker_at(turns, ends, word.start, word.end, loudest)
            segments.extend(_split(segment))
        else:
            segment.speaker = _speaker_at(turns, ends, segment.start, segment.end, loudest)
            segments.append(segment)
    order = _renumber(segments)
    transcript.segments = segments
    transcript.speakers = list(order.values())
    return order


def chunk_speaker_rows(
    chunks: Sequence[Chunk], names: Mapping[str, str] | None
) -> list[ChunkSpeaker]:
    """The ``chunk_speakers`` rows of ``chunks`` (stored, with ids): each speaker of each
    chunk by the name shown, so the ``speaker`` filter finds every chunk they speak in."""
    return [
        ChunkSpeaker(chunk_id=c.id, name=name)
        for c in chunks
        for name in dict.fromkeys(display_names(c.speakers, names))
    ]


def overlapped(turns: Sequence[Turn], least_s: float = 0.2) -> list[tuple[float, float, list[str]]]:
    """The stretches (of ``least_s`` or more) where two or more speakers' turns overlap,
    with who speaks in each, in time order."""
    edges = sorted({t.start for t in turns} | {t.end for t in turns})
    out: list[tuple[float, float, list[str]]] = []
    for start, end in zip(edges, edges[1:], strict=False):
        who = sorted({t.speaker for t in turns if t.start < end and t.end > start})
        if len(who) < 2:
            continue
        if out and out[-1][1] == start and out[-1][2] == who:
            out[-1] = (out[-1][0], end, who)
        else:
            out.append((start, end, who))
    return [(round(a, 2), round(b, 2), who) for a, b, who in out if b - a >= least_s]


def _speech_by_label(turns: Sequence[Turn]) -> dict[str, float]:
    speech: dict[str, float] = {}
    for t in turns:
        speech[t.speaker] = round(speech.get(t.speaker, 0.0) + (t.end - t.start), 2)
    return speech


def _speaker_at(
    turns: Sequence[Turn],
    ends: list[float],
    start: float | None,
    end: float | None,
    loudest: Callable[[float, float], str | None] | None = None,
) -> str | None:
    """The speaker of ``[start, end]`` among time-ordered ``turns`` (``ends``: the running
    maximum of their end times): the turn it overlaps most, or the most active speaker by
    ``loudest`` when two turns cover it, else the nearest within ``_REACH_S``; found by
    bisection, so hours of words against thousands of turns stay cheap."""
    if start is None or end is None:
        return None
    best, overlap, covering = None, 0.0, set()
    for turn in turns[bisect_left(ends, start) :]:
        if turn.start > end:
            break
        shared = min(end, turn.end) - max(start, turn.start)
        if shared > 0:
            covering.add(turn.speaker)
        if shared > overlap:
            best, overlap = turn.speaker, shared
    if best is not None:
        if len(covering) > 1 and loudest is not None:
            return loudest(start, end) or best
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
