"""Token-accurate chunking of a transcript for the embedding model.

Sizes are counted with the embedding model's own tokenizer, so no chunk is silently
truncated by the model. Words are counted once, in one batched call; each word is
counted *alone*, exactly as it reads at the start of a chunk, so a one-word chunk's
estimate is exact. Inside a chunk the tokenizer may merge or split across spaces
differently (byte-level BPE does); the final recount of every chunk text catches that
and trims the chunk.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from itertools import accumulate

from ragcast.text import tight
from ragcast.tokens import HFTokenCounter, TokenCounter
from ragcast.types import ChunkSpec, TextChunk, Transcript

__all__ = ["HFTokenCounter", "TokenCounter", "chunk_transcript"]

# A word ending a sentence, allowing closing quotes or brackets after the mark.
_SENTENCE_END = re.compile(r"[.!?…。！？][\"'”’)\]»]*$")

# Recount this many chunks per batched call at first; the window doubles while no chunk
# overflows, so a clean run costs a handful of calls and a messy one wastes little work.
_FIRST_WINDOW = 16
_MAX_WINDOW = 4096
# No token of a real tokenizer spans more characters than this.
_MAX_CHARS_PER_TOKEN = 128
#: a speaker's turn with fewer tokens than this ("yes", "right, exactly") is too short to
#: stand alone as a chunk: it joins the turn before it (the first turn, the one after),
#: and the chunk lists both speakers
MIN_TURN_TOKENS = 6


@dataclass(slots=True)
class _Unit:
    """One whitespace-free piece of text with its times."""

    text: str
    start: float | None
    end: float | None
    boundary: bool = False  # a chunk may end after this unit (sentence or segment end)
    speaker: str | None = None
    turn: bool = False  # the speaker changes after this unit
    probability: float | None = None  # the recogniser's, for the word this unit is from
    #: a recogniser's word: it follows the unit before it as its script writes it (no space
    #: between CJK characters); a document's or caption's units keep their own spaces
    tight: bool = False


def chunk_transcript(
    transcript: Transcript, spec: ChunkSpec, counter: TokenCounter, reserve: int = 2
) -> list[TextChunk]:
    """Cut ``transcript`` into chunks of at most ``min(chunk_size, max_tokens) - reserve`` tokens.

    ``reserve`` leaves room for the special tokens the model adds. Chunks prefer to end at
    a sentence or segment end in their last half, overlap by at most ``chunk_overlap``
    tokens of trailing words, and always make progress. ``token_count`` is the real
    count of the chunk text. In a diarized transcript a chunk never runs across a turn
    that stands alone (:data:`MIN_TURN_TOKENS` or more): every such turn starts a new chunk,
    so no speaker hides inside another's chunk; shorter turns join a neighbour. A chunk
    that ends at a turn is not overlapped by the next.
    """
    limit = min(spec.chunk_size, spec.max_tokens) - reserve
    if limit < 1:
        raise ValueError(f"chunk limit must be at least 1 token, got {limit}")
    units = _flatten(transcript)
    if not units:
        return []
    counts = counter.count([u.text for u in units])
    units, counts = _drop_silent_units(units, counts)
    if not units:
        return []
    units, counts = _split_long_units(units, counts, limit, counter)
    packer = _Packer(units, counts, limit, max(0, spec.chunk_overlap), counter)
    return [
        _make_chunk(index, units, counts, start, end, tokens)
        for index, (start, end, tokens) in enumerate(packer.run())
    ]


def _flatten(transcript: Transcript) -> list[_Unit]:
    """All words of all segments in order, split on whitespace, with boundary marks."""
    units: list[_Unit] = []
    recognised = transcript.source == "asr"
    for segment in transcript.segments:
        before = len(units)
        if segment.words:
            for word in segment.words:
                who = word.speaker or segment.speaker
                units.extend(
                    _Unit(
                        t,
                        word.start,
                        word.end,
                        speaker=who,
                        probability=word.probability,
                        tight=recognised,
                    )
                    for t in word.text.split()
                )
        else:
            units.extend(
                _Unit(t, segment.start, segment.end, speaker=segment.speaker, tight=recognised)
                for t in segment.text.split()
            )
        if len(units) > before:
            units[-1].boundary = True
    for unit, following in zip(units, units[1:], strict=False):
        if unit.speaker and following.speaker and unit.speaker != following.speaker:
            unit.turn = unit.boundary = True
    for unit in units:
        if _SENTENCE_END.search(unit.text):
            unit.boundary = True
    return units


def _drop_silent_units(units: list[_Unit], counts: list[int]) -> tuple[list[_Unit], list[int]]:
    """Drop units the tokenizer ignores entirely (zero-width or control characters).

    They add nothing to an embedding, and a chunk made only of them would embed as empty.
    """
    if all(counts):
        return units, counts
    kept: list[_Unit] = []
    kept_counts: list[int] = []
    for unit, count in zip(units, counts, strict=True):
        if count:
            kept.append(unit)
            kept_counts.append(count)
        elif unit.boundary and kept:
            kept[-1].boundary = True
            kept[-1].turn = kept[-1].turn or unit.turn
    return kept, kept_counts


def _split_long_units(
    units: list[_Unit], counts: list[int], limit: int, counter: TokenCounter
) -> tuple[list[_Unit], list[int]]:
    """Split every unit longer than ``limit`` tokens by characters into pieces that fit."""
    if all(c <= limit for c in counts):
        return units, counts
    out_units: list[_Unit] = []
    out_counts: list[int] = []
    for unit, count in zip(units, counts, strict=True):
        if count <= limit:
            out_units.append(unit)
            out_counts.append(count)
            continue
        pieces = _split_text(unit.text, limit, counter)
        for i, (piece, piece_count) in enumerate(pieces):
            last = i == len(pieces) - 1
            out_units.append(
                _Unit(
                    piece,
                    unit.start,
                    unit.end,
                    unit.boundary and last,
                    unit.speaker,
                    unit.turn and last,
                    unit.probability,
                    unit.tight,
                )
            )
            out_counts.append(piece_count)
    return out_units, out_counts


def _split_text(text: str, limit: int, counter: TokenCounter) -> list[tuple[str, int]]:
    """Greedy character split: each piece is a longest prefix that fits ``limit``."""
    pieces: list[tuple[str, int]] = []
    rest = text
    while rest:
        size = _fitting_prefix(rest, limit, counter)
        pieces.append((rest[:size], counter.count([rest[:size]])[0]))
        rest = rest[size:]
    return pieces


def _fitting_prefix(text: str, limit: int, counter: TokenCounter) -> int:
    """Length of a longest prefix of ``text`` within ``limit`` tokens, at least 1.

    Probes are capped at ``_MAX_CHARS_PER_TOKEN * limit`` characters so a megabyte of
    base64 costs a few short tokenizations per piece, not a full one. At least one
    character is taken, so a character worth more than the limit (byte-level BPE with a
    tiny limit) still makes progress.
    """
    hi = min(len(text), _MAX_CHARS_PER_TOKEN * limit)
    if counter.count([text[:hi]])[0] <= limit:
        return hi
    size = _largest(1, hi - 1, lambda n: counter.count([text[:n]])[0] <= limit)
    return size or 1


def _largest(lo: int, hi: int, fits: Callable[[int], bool]) -> int | None:
    """Largest ``n`` in ``[lo, hi]`` with ``fits(n)``, assuming ``fits`` is monotone."""
    best: int | None = None
    while lo <= hi:
        mid = (lo + hi) // 2
        if fits(mid):
            best, lo = mid, mid + 1
        else:
            hi = mid - 1
    return best


class _Packer:
    """Greedy packing over prefix sums of the per-unit token estimates."""

    def __init__(
        self,
        units: list[_Unit],
        counts: list[int],
        limit: int,
        overlap: int,
        counter: TokenCounter,
    ) -> None:
        self.units = units
        self.counts = counts
        self.prefix = [0, *accumulate(counts)]
        self.boundary_ends = [i + 1 for i, u in enumerate(units) if u.boundary]
        self.turn_ends = [i + 1 for i, u in enumerate(units) if u.turn]
        self.cuts = _turn_cuts(units, self.prefix, self.turn_ends)
        self.limit = limit
        self.overlap = overlap
        self.counter = counter

    def run(self) -> list[tuple[int, int, int]]:
        """Return ``(start, end, real_tokens)`` spans covering every unit in order."""
        spans: list[tuple[int, int, int]] = []
        start, done, window = 0, 0, _FIRST_WINDOW
        n = len(self.units)
        while done < n:
            proposed = self._propose(start, done, window)
            real = self.counter.count([self._text(s, e) for s, e, _ in proposed])
            window = min(window * 2, _MAX_WINDOW)
            for (s, e, prev_done), tokens in zip(proposed, real, strict=True):
                overflow = tokens > self.limit
                if overflow:
                    s, e, tokens = self._shrink(s, e, prev_done)
                spans.append((s, e, tokens))
                start, done = self._next_start(s, e), e
                if overflow:
                    # Every later proposal was built on the wrong end: propose again.
                    window = _FIRST_WINDOW
                    break
        return spans

    def _propose(self, start: int, done: int, window: int) -> list[tuple[int, int, int]]:
        """Up to ``window`` spans from the estimates alone, with the end each one follows."""
        proposed: list[tuple[int, int, int]] = []
        n = len(self.units)
        while done < n and len(proposed) < window:
            end = self._pick_end(start, done)
            proposed.append((start, end, done))
            start, done = self._next_start(start, end), end
        return proposed

    def _pick_end(self, start: int, done: int) -> int:
        """End of the chunk starting at ``start``; ``done`` units are already covered."""
        prefix = self.prefix
        full = bisect_right(prefix, prefix[start] + self.limit, lo=start + 1) - 1
        # Always take one new unit, even one whose estimate exceeds the limit.
        full = max(full, done + 1)
        # A turn that stands alone starts a chunk of its own, however short this one is.
        i = bisect_right(self.cuts, done)
        if i < len(self.cuts) and self.cuts[i] <= full:
            return self.cuts[i]
        if full >= len(self.units):
            return len(self.units)
        # The last turn end, else sentence end, that fits; taken if it keeps half the chunk.
        for ends in (self.turn_ends, self.boundary_ends):
            i = bisect_right(ends, full) - 1
            if i >= 0:
                end = ends[i]
                if end > done and 2 * (prefix[end] - prefix[start]) >= prefix[full] - prefix[start]:
                    return end
        return full

    def _next_start(self, start: int, end: int) -> int:
        """Start of the chunk after ``[start, end)``: trailing units within the overlap.

        The overlap leaves room for the next new unit and never takes the whole previous
        chunk, so every chunk covers at least one unit the previous one did not.
        """
        if end >= len(self.units) or self.units[end - 1].turn:
            return end  # no overlap across a change of speaker
        budget = min(self.overlap, self.limit - self.counts[end])
        prefix = self.prefix
        return bisect_left(prefix, prefix[end] - budget, lo=start + 1, hi=end)

    def _shrink(self, start: int, end: int, done: int) -> tuple[int, int, int]:
        """Trim an overflowing chunk from the end, keeping at least one new unit.

        If even the overlap plus one new unit overflows, overlap units are dropped from
        the front; a single unit always fits since its estimate is exact.
        """

        def fits_end(e: int) -> bool:
            return self._count(start, e) <= self.limit

        new_end = _largest(done + 1, end - 1, fits_end)
        if new_end is not None:
            return start, new_end, self._count(start, new_end)
        end = done + 1
        # Keep as many trailing units (overlap plus the one new unit) as still fit.
        keep = _largest(1, end - start - 1, lambda k: self._count(end - k, end) <= self.limit)
        new_start = end - (keep or 1)
        return new_start, end, self._count(new_start, end)

    def _count(self, start: int, end: int) -> int:
        return self.counter.count([self._text(start, end)])[0]

    def _text(self, start: int, end: int) -> str:
        return _join(self.units[start:end])


def _turn_cuts(units: list[_Unit], prefix: list[int], turn_ends: list[int]) -> list[int]:
    """Unit positions where a chunk must end: where a turn of at least
    :data:`MIN_TURN_TOKENS` tokens starts by another speaker than the one holding the
    floor. Shorter turns stay with the turns around them (an interjection does not split
    its neighbour's talk)."""
    starts = [0, *(e for e in turn_ends if e < len(units))]
    bounds = [*starts, len(units)]
    cuts: list[int] = []
    floor: str | None = None  # the speaker of the last turn that stood alone
    for start, end in zip(bounds, bounds[1:], strict=False):
        if prefix[end] - prefix[start] < MIN_TURN_TOKENS:
            continue
        who = next((u.speaker for u in units[start:end] if u.speaker), None)
        if floor is not None and who != floor and start > 0:
            cuts.append(start)
        floor = who
    return cuts


def _make_chunk(
    index: int, units: list[_Unit], counts: list[int], start: int, end: int, tokens: int
) -> TextChunk:
    """Build the chunk for ``units[start:end]`` with the span of its timed words."""
    span = units[start:end]
    first = next((u.start for u in span if u.start is not None), None)
    last = next((u.end for u in reversed(span) if u.end is not None), None)
    return TextChunk(
        index=index,
        text=_join(span),
        token_count=tokens,
        start_s=first,
        end_s=last,
        speakers=_speakers(span, counts[start:end]),
        confidence=_confidence(span),
    )


def _confidence(span: list[_Unit]) -> float | None:
    """The mean probability of a chunk's recognised units; None when none has one
    (captions, documents, transcripts stored before probabilities were kept)."""
    known = [u.probability for u in span if u.probability is not None]
    return round(sum(known) / len(known), 4) if known else None


def _join(span: list[_Unit]) -> str:
    """The text of ``span``: recognised words as their script writes them (no space
    between two CJK characters, as Whisper's segment text), other units with a space."""
    out: list[str] = []
    for unit in span:
        if out and not (unit.tight and tight(out[-1], unit.text)):
            out.append(" ")
        out.append(unit.text)
    return "".join(out)


def _speakers(span: list[_Unit], counts: list[int]) -> list[str]:
    """Speakers of a chunk's units, most tokens first (first to speak breaks ties)."""
    tokens: dict[str, int] = {}
    for unit, count in zip(span, counts, strict=True):
        if unit.speaker:
            tokens[unit.speaker] = tokens.get(unit.speaker, 0) + count
    return sorted(tokens, key=lambda name: -tokens[name])
