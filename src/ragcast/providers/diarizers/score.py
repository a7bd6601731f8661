"""Scoring diarization against known turns: frame accuracy and DER under the best mapping.

``frame_accuracy`` is 1 - DER without overlapped speech: the share of reference speech
frames (10 ms) whose hypothesis speaker, mapped one-to-one onto reference speakers so as to
agree most, is the reference speaker. Missed speech and speech given to the wrong speaker
both count against it; frames within ``collar`` seconds of a reference turn boundary are
not scored, as in the usual DER scoring.

``der`` is the diarization error rate as published results report it (md-eval style, no
collar, overlapped speech included): at every 10 ms frame with ``n_ref`` reference and
``n_hyp`` hypothesis speakers, of whom ``n_correct`` agree under the one-to-one label
mapping that maximises the time they share (Hungarian), missed speech is
``max(0, n_ref - n_hyp)``, false alarm ``max(0, n_hyp - n_ref)`` and confusion
``min(n_ref, n_hyp) - n_correct``, summed over frames and divided by the total reference
speech (``sum n_ref``). ``read_rttm`` reads the turns of an RTTM file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from ragcast.providers.diarizers.base import Turn

_FRAME = 0.01


def _frames(turns: Sequence[Turn], total: int, names: dict[str, int]) -> np.ndarray:
    labels = np.full(total, -1, dtype=np.int64)
    for turn in turns:
        code = names.setdefault(turn.speaker, len(names))
        labels[int(round(turn.start / _FRAME)) : int(round(turn.end / _FRAME))] = code
    return labels


def frame_accuracy(
    reference: Sequence[Turn], hypothesis: Sequence[Turn], collar: float = 0.25
) -> float:
    """1 - DER (no overlap) of ``hypothesis`` against ``reference``, in [0, 1]."""
    from scipy.optimize import linear_sum_assignment

    end = max([t.end for t in reference] + [t.end for t in hypothesis] + [0.0])
    total = int(round(end / _FRAME)) + 1
    ref_names: dict[str, int] = {}
    hyp_names: dict[str, int] = {}
    ref = _frames(reference, total, ref_names)
    hyp = _frames(hypothesis, total, hyp_names)
    scored = ref >= 0
    pad = int(round(collar / _FRAME))
    for turn in reference:
        for edge in (turn.start, turn.end):
            at = int(round(edge / _FRAME))
            scored[max(0, at - pad) : at + pad] = False
    if not scored.any():
        return 1.0
    agree = np.zeros((len(ref_names), max(len(hyp_names), 1)), dtype=np.int64)
    both = scored & (hyp >= 0)
    np.add.at(agree, (ref[both], hyp[both]), 1)
    rows, cols = linear_sum_assignment(-agree)
    return float(agree[rows, cols].sum() / scored.sum())


@dataclass(frozen=True, slots=True)
class DerResult:
    """The parts of the diarization error rate, in seconds of speech."""

    missed: float
    false_alarm: float
    confusion: float
    total: float

    @property
    def der(self) -> float:
        """(missed + false alarm + confusion) / total reference speech."""
        errors = self.missed + self.false_alarm + self.confusion
        return errors / self.total if self.total > 0 else float(errors > 0)

    def __add__(self, other: DerResult) -> DerResult:
        """Pooled over recordings: the seconds add up."""
        return DerResult(
            self.missed + other.missed,
            self.false_alarm + other.false_alarm,
            self.confusion + other.confusion,
            self.total + other.total,
        )


def _activity(turns: Sequence[Turn], total: int) -> tuple[NDArray[np.bool_], list[str]]:
    """``(frames, speakers)`` activity of possibly overlapping turns."""
    names = list(dict.fromkeys(t.speaker for t in turns))
    out = np.zeros((total, len(names)), dtype=bool)
    index = {name: n for n, name in enumerate(names)}
    for turn in turns:
        out[
            int(round(turn.start / _FRAME)) : int(round(turn.end / _FRAME)), index[turn.speaker]
        ] = True
    return out, names


def der(reference: Sequence[Turn], hypothesis: Sequence[Turn]) -> DerResult:
    """Missed speech, false alarm and confusion of ``hypothesis`` (no collar, overlap
    scored), with the total reference speech, in seconds."""
    from scipy.optimize import linear_sum_assignment

    end = max([t.end for t in reference] + [t.end for t in hypothesis] + [0.0])
    total = int(round(end / _FRAME)) + 1
    ref, _ = _activity(reference, total)
    hyp, _ = _activity(hypothesis, total)
    n_ref, n_hyp = ref.sum(axis=1), hyp.sum(axis=1)
    shared = ref.T.astype(np.int64) @ hyp.astype(np.int64)  # (ref, hyp) frames together
    correct = np.zeros(total, dtype=np.int64)
    if shared.size:
        rows, cols = linear_sum_assignment(-shared)
        correct = (ref[:, rows] & hyp[:, cols]).sum(axis=1)
    return DerResult(
        missed=float(np.maximum(0, n_ref - n_hyp).sum() * _FRAME),
        false_alarm=float(np.maximum(0, n_hyp - n_ref).sum() * _FRAME),
        confusion=float((np.minimum(n_ref, n_hyp) - correct).sum() * _FRAME),
        total=float(n_ref.sum() * _FRAME),
    )


def read_rttm(path: str | Path) -> list[Turn]:
    """The turns of an RTTM file (``SPEAKER`` lines), ordered by start."""
    turns: list[Turn] = []
    for line in Path(path).read_text().splitlines():
        fields = line.split()
        if len(fields) >= 8 and fields[0] == "SPEAKER":
            start, duration = float(fields[3]), float(fields[4])
            turns.append(Turn(start, start + duration, fields[7]))
    return sorted(turns, key=lambda t: (t.start, t.end))
