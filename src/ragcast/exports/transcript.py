"""An item's transcript as JSON, SubRip (``.srt``), WebVTT (``.vtt``) or plain text.

Speakers appear by name once named (``PATCH .../speakers``), else by label
(``SPEAKER_00``): as an SRT cue prefix (``Host: ...``), as a WebVTT voice span
(``<v Host>...``, which players show as the cue's speaker), and as a paragraph prefix in
text, one paragraph per speaker turn. A transcript without speakers reads as before.
Segments without times (a parsed document) take the previous cue's end.

No text can forge a cue: each cue's text and speaker are one line (every line break and
control character becomes a space, so no blank line ends a cue early), and ``-->`` (a
cue's timing arrow) is written ``->`` in SRT and ``--&gt;`` in WebVTT.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from ragcast.pipeline.speakers import display_name
from ragcast.pipeline.types import Segment, Transcript
from ragcast.text import join_words

TranscriptFormat = Literal["json", "srt", "vtt", "txt"]
FORMATS: tuple[TranscriptFormat, ...] = ("json", "srt", "vtt", "txt")
MEDIA_TYPES: dict[str, str] = {
    "json": "application/json",
    "srt": "application/x-subrip; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
    "txt": "text/plain; charset=utf-8",
}


def transcript_dict(data: Transcript, names: Mapping[str, str] | None) -> dict[str, Any]:
    """The JSON form: language, duration, speakers (label, name, and the library voice
    that recognised it), stretches of overlapped speech, and segments."""
    voices = data.voices or {}
    return {
        "language": data.language,
        "duration_s": data.duration_s,
        "source": data.source,
        "speakers": [
            {
                "label": label,
                "name": display_name(label, names),
                "recognised": (voices.get(label) or {}).get("match"),
            }
            for label in data.speakers or []
        ],
        "overlaps": [
            {
                "start": o["start"],
                "end": o["end"],
                "speakers": [display_name(x, names) for x in o["speakers"]],
            }
            for o in data.overlaps or []
        ],
        "segments": [
            {
                "start": seg.start,
                "end": seg.end,
                "text": seg.text,
                "speaker": display_name(seg.speaker, names),
                "words": [
                    {
                        "text": w.text,
                        "start": w.start,
                        "end": w.end,
                        "speaker": display_name(w.speaker, names),
                    }
                    for w in seg.words
                ],
            }
            for seg in data.segments
        ],
    }


def render(data: Transcript, names: Mapping[str, str] | None, fmt: str) -> str:
    """The transcript as ``srt``, ``vtt`` or ``txt`` text."""
    if fmt == "srt":
        return _srt(data, names)
    if fmt == "vtt":
        return _vtt(data, names)
    if fmt == "txt":
        return _txt(data, names)
    raise ValueError(f"unknown transcript format {fmt!r}")


def _cues(data: Transcript) -> list[tuple[float, float, Segment]]:
    """Timed, non-empty segments; an untimed one follows the previous cue."""
    cues: list[tuple[float, float, Segment]] = []
    last = 0.0
    for seg in data.segments:
        if not _one_line(seg.text):
            continue
        start = seg.start if seg.start is not None else last
        end = seg.end if seg.end is not None else start
        cues.append((start, max(start, end), seg))
        last = max(start, end)
    return cues


def _clock(seconds: float, mark: str) -> str:
    millis = int(round(max(seconds, 0.0) * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{mark}{millis:03d}"


#: control characters (str.split() already breaks on the line-breaking ones)
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
#: a timing arrow, however many dashes lead it
_ARROW = re.compile(r"-{2,}>")


def _one_line(text: str) -> str:
    """``text`` as one line: line breaks, tabs and other controls become single spaces."""
    return " ".join(_CONTROLS.sub(" ", text).split())


def _srt_text(text: str) -> str:
    """Cue text for SRT, which has no escapes: one line, with no timing arrow in it."""
    return _ARROW.sub("->", _one_line(text))


def _srt(data: Transcript, names: Mapping[str, str] | None) -> str:
    blocks = []
    for n, (start, end, seg) in enumerate(_cues(data), start=1):
        who = display_name(seg.speaker, names)
        prefix = f"{_srt_text(who)}: " if who and _one_line(who) else ""
        text = _srt_text(seg.text)
        blocks.append(f"{n}\n{_clock(start, ',')} --> {_clock(end, ',')}\n{prefix}{text}\n")
    return "\n".join(blocks)


def _vtt_escape(text: str) -> str:
    """One line with WebVTT's escapes: ``-->`` becomes ``--&gt;``, which ends no cue."""
    line = _one_line(text)
    return line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _vtt(data: Transcript, names: Mapping[str, str] | None) -> str:
    blocks = ["WEBVTT\n"]
    for start, end, seg in _cues(data):
        who = display_name(seg.speaker, names)
        text = _vtt_escape(seg.text)
        voice = f"<v {_vtt_escape(who)}>" if who and _one_line(who) else ""
        blocks.append(f"{_clock(start, '.')} --> {_clock(end, '.')}\n{voice}{text}\n")
    return "\n".join(blocks)


def _txt(data: Transcript, names: Mapping[str, str] | None) -> str:
    if not data.speakers:
        return "\n".join(s.text.strip() for s in data.segments if s.text.strip()) + "\n"
    paragraphs: list[tuple[str | None, list[str]]] = []
    for seg in data.segments:
        if not seg.text.strip():
            continue
        who = display_name(seg.speaker, names)
        if paragraphs and paragraphs[-1][0] == who:
            paragraphs[-1][1].append(seg.text.strip())
        else:
            paragraphs.append((who, [seg.text.strip()]))
    return (
        "\n\n".join(f"{f'{who}: ' if who else ''}{join_words(texts)}" for who, texts in paragraphs)
        + "\n"
    )
