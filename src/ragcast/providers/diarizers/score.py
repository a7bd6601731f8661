"""Scoring diarization against known turns: frame accuracy under the best label mapping.

``frame_accuracy`` is 1 - DER without overlapped speech: the share of reference speech
frames (10 ms) whose hypothesis speaker, mapped one-to-one onto reference speakers so as to
agree most, is the reference speaker. Missed speech and speech given to the wrong speaker
both count against it; frames within ``collar`` seconds of a reference turn boundary are
not scored, as in the usual DER scoring.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

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
