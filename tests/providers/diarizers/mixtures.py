"""Multi-speaker recordings built from the shared clips, with known turn times.

Each clip of ``shared/data`` is one speaker (LibriSpeech, LibriVox, LJSpeech, Common Voice,
AISHELL, JFK, ...). A clip longer than 7 s is cut into parts of at least 3.5 s, and a
mixture strings parts of two to four speakers into a conversation (no speaker twice in a
row). The reference turn of a part is its span with leading and trailing silence trimmed
by an energy threshold that knows nothing of the diarizer's own VAD.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from faster_whisper import decode_audio

from ragcast.providers.diarizers.base import Turn

RATE = 16_000


@dataclass
class Mixture:
    """One built recording: 16 kHz mono samples, the reference turns, the speaker count."""

    name: str
    audio: np.ndarray
    turns: list[Turn]

    @property
    def speakers(self) -> int:
        return len({t.speaker for t in self.turns})


def _voiced_span(audio: np.ndarray) -> tuple[int, int]:
    """First and last sample of 25 ms frames within 35 dB of the loudest frame."""
    frame = 400
    n = len(audio) // frame
    rms = np.sqrt(np.mean(audio[: n * frame].reshape(n, frame) ** 2, axis=1) + 1e-12)
    loud = np.flatnonzero(rms >= rms.max() * 10 ** (-35 / 20))
    return int(loud[0] * frame), int((loud[-1] + 1) * frame)


def speaker_parts(data: Path) -> dict[str, list[np.ndarray]]:
    """Each clip's audio (one speaker per clip), cut into parts of 3.5 s or more."""
    parts: dict[str, list[np.ndarray]] = {}
    for path in sorted(data.glob("clip*")):
        audio = decode_audio(str(path), sampling_rate=RATE)
        pieces = max(1, int(len(audio) / RATE // 3.5))
        size = len(audio) // pieces
        parts[path.stem] = [audio[i * size : (i + 1) * size] for i in range(pieces)]
    return parts


def build(data: Path, count: int = 12, seed: int = 7) -> list[Mixture]:
    """``count`` mixtures of 2-4 speakers (the first of one speaker), fixed by ``seed``."""
    parts = speaker_parts(data)
    rng = random.Random(seed)
    mixtures = [_single(parts, "clip09")]
    multi = [name for name, p in parts.items() if len(p) >= 2]
    for n in range(count - 1):
        k = 2 + n % 3
        chosen = rng.sample(sorted(parts), k)
        if not any(c in multi for c in chosen):
            chosen[0] = rng.choice(multi)
        mixtures.append(_conversation(parts, chosen, f"mix{n:02d}-{k}spk", rng))
    return mixtures


def _single(parts: dict[str, list[np.ndarray]], name: str) -> Mixture:
    audio = np.concatenate(parts[name])
    lo, hi = _voiced_span(audio)
    return Mixture(f"single-{name}", audio, [Turn(lo / RATE, hi / RATE, name)])


def _conversation(
    parts: dict[str, list[np.ndarray]], speakers: list[str], name: str, rng: random.Random
) -> Mixture:
    queue = {s: list(parts[s]) for s in speakers}
    left = {s: len(parts[s]) for s in speakers}
    order: list[str] = []
    last = None
    while any(left.values()):
        ready = [s for s in speakers if left[s] and s != last] or [s for s in speakers if left[s]]
        # speakers with more left go first, so turns interleave rather than bunch at the end
        ready.sort(key=lambda s: -left[s] + rng.random())
        last = ready[0]
        left[last] -= 1
        order.append(last)
    audio: list[np.ndarray] = []
    turns: list[Turn] = []
    at = 0
    for speaker in order:
        piece = queue[speaker].pop(0)
        lo, hi = _voiced_span(piece)
        if turns and turns[-1].speaker == speaker:
            turns[-1] = Turn(turns[-1].start, (at + hi) / RATE, speaker)
        else:
            turns.append(Turn((at + lo) / RATE, (at + hi) / RATE, speaker))
        audio.append(piece)
        at += len(piece)
    return Mixture(name, np.concatenate(audio).astype(np.float32), turns)


def write_wav(audio: np.ndarray, path: Path) -> Path:
    """``audio`` (16 kHz mono float) as a 16-bit WAV file at ``path``."""
    import wave

    pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(pcm.tobytes())
    return path


def conversation(data: Path) -> Mixture:
    """A fixed two-speaker conversation (JFK and a LibriVox reader, two turns each)."""
    parts = speaker_parts(data)
    return _conversation(parts, ["clip01", "clip05"], "jfk-librivox", random.Random(1))
