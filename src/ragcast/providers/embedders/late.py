"""Macro windows for late chunking of documents longer than a model's context.

Late chunking runs the transformer over a whole document and pools each chunk's vector
from token embeddings that saw the text around it. A document longer than the model's
context is cut into overlapping windows; each unit (a token for the local model, a chunk
for the Jina API) takes its vector from the window where it sits most centrally, so it
sees as much context on both sides as the windows give.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from itertools import accumulate


def plan_windows(lengths: Sequence[int], budget: int, overlap: int) -> list[tuple[int, int]]:
    """Unit ranges ``[start, end)`` of at most ``budget`` total length covering every unit.

    Consecutive windows share trailing units worth up to ``overlap`` of length, leaving
    room for at least one new unit; a unit longer than ``budget`` gets a window alone.
    """
    n = len(lengths)
    if n == 0:
        return []
    prefix = [0, *accumulate(lengths)]
    windows: list[tuple[int, int]] = []
    start = 0
    while True:
        end = max(bisect_right(prefix, prefix[start] + budget, lo=start + 1) - 1, start + 1)
        windows.append((start, end))
        if end >= n:
            return windows
        shared = max(0, min(overlap, budget - lengths[end]))
        start = bisect_left(prefix, prefix[end] - shared, lo=start + 1, hi=end)


def owners(windows: Sequence[tuple[int, int]], lengths: Sequence[int]) -> list[int]:
    """For each unit, the index of the window in which its centre is farthest from an edge."""
    prefix = [0, *accumulate(lengths)]
    best = [-1] * len(lengths)
    margin = [-1.0] * len(lengths)
    for w, (start, end) in enumerate(windows):
        left, right = prefix[start], prefix[end]
        for i in range(start, end):
            centre = prefix[i] + lengths[i] / 2
            m = min(centre - left, right - centre)
            if m > margin[i]:
                best[i], margin[i] = w, m
    return best
