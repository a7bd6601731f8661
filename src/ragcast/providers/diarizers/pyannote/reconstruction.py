"""From windows of local speakers to turns of the recording's speakers.

A local speaker's activity in a window is cut into pieces (a few seconds each, within
the part of the window no neighbouring window is nearer to), and each piece is embedded
and given a cluster, so one local speaker can be two people where the segmentation model
missed a change of voice. The local speakers of a window go to distinct clusters where
they speak at once (a Hungarian assignment per window, then a piece may move to its own
nearest cluster when no one speaking with it holds that cluster). The clustered activity
is averaged over the overlapping windows, and at every frame the ``n`` most active
speakers speak, ``n`` being the windows' rounded mean count of local speakers there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Floats = NDArray[np.float32]
Ints = NDArray[np.int64]
Bools = NDArray[np.bool_]


@dataclass(slots=True)
class Piece:
    """Part of one local speaker's activity in one window: local frames ``[first, last)``."""

    window: int
    speaker: int
    first: int
    last: int
    seconds: float
    row: int = -1  # its embedding's row, -1 when it had too little voice for one


def runs(active: Bools) -> list[tuple[int, int]]:
    """``[start, end)`` index ranges where ``active`` holds."""
    edges = np.diff(np.concatenate([[0], active.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


def cut(
    active: Bools, own: tuple[int, int], piece_frames: int, gap_frames: int
) -> list[tuple[int, int]]:
    """Frame ranges of the pieces of one local speaker's ``active`` frames within ``own``:
    pauses under ``gap_frames`` are bridged, longer stretches split evenly."""
    lo, hi = own
    spans: list[list[int]] = []
    for a, b in runs(active[lo:hi]):
        if spans and a + lo - spans[-1][1] < gap_frames:
            spans[-1][1] = b + lo
        else:
            spans.append([a + lo, b + lo])
    out: list[tuple[int, int]] = []
    for a, b in spans:
        n = max(1, round((b - a) / piece_frames))
        edges = np.linspace(a, b, n + 1).round().astype(np.int64).tolist()
        out.extend(zip(edges[:-1], edges[1:], strict=True))
    return out


def assign(pieces: list[Piece], similarity: Floats, activity: Bools) -> NDArray[np.int16]:
    """Cluster of every active frame of every local speaker, ``(windows, frames, 3)``
    (-1 where none could be given: a local speaker without an embedded piece).

    ``similarity`` is ``(embedded pieces, clusters)``; ``activity`` the windows' local
    speakers, ``(windows, frames, 3)``.
    """
    from scipy.optimize import linear_sum_assignment

    windows, frames, speakers = activity.shape
    maps = np.full((windows, frames, speakers), -1, dtype=np.int16)
    by_window: dict[int, list[Piece]] = {}
    for p in pieces:
        by_window.setdefault(p.window, []).append(p)
    for w, own in by_window.items():
        embedded = [p for p in own if p.row >= 0]
        if not embedded:
            continue
        k = similarity.shape[1]
        score = np.zeros((speakers, k))
        for p in embedded:
            score[p.speaker] += p.seconds * similarity[p.row]
        tracks = sorted({p.speaker for p in embedded})
        rows, cols = linear_sum_assignment(score[tracks], maximize=True)
        default = {tracks[r]: int(c) for r, c in zip(rows.tolist(), cols.tolist(), strict=True)}
        for t in tracks:  # more local speakers than clusters: the nearest one
            default.setdefault(t, int(np.argmax(score[t])))
        chosen: dict[int, list[tuple[int, int, int]]] = {}
        for p in embedded:
            c = default[p.speaker]
            best = int(np.argmax(similarity[p.row]))
            if best != c:
                others = [
                    s
                    for s in default
                    if s != p.speaker
                    and default[s] == best
                    and activity[w, p.first : p.last, s].any()
                ]
                if not others:
                    c = best
            chosen.setdefault(p.speaker, []).append((p.first, p.last, c))
        for s, spans in chosen.items():
            maps[w, :, s] = _nearest_fill(spans, activity[w, :, s])
    return maps


def _nearest_fill(spans: list[tuple[int, int, int]], active: Bools) -> NDArray[np.int16]:
    """Each active frame's cluster: that of the piece it is in, else of the nearest piece."""
    frames = len(active)
    label = np.full(frames, -1, dtype=np.int16)
    for a, b, c in spans:
        label[a:b] = c
    known = np.flatnonzero(label >= 0)
    at = np.clip(np.searchsorted(known, np.arange(frames)), 1, max(1, len(known) - 1))
    if len(known) == 1:
        nearest = np.zeros(frames, dtype=np.int64)
    else:
        left, right = known[at - 1], known[at]
        pick_left = np.arange(frames) - left <= right - np.arange(frames)
        nearest = np.where(pick_left, at - 1, at)
    filled = label[known[nearest]]
    return np.where(active, filled, np.int16(-1)).astype(np.int16)


def aggregate(
    activity: Bools, maps: NDArray[np.int16], offsets: Ints, weights: Floats, k: int, total: int
) -> Floats:
    """Each cluster's activity, ``(total, k)``: the windows' votes averaged with the
    ``(windows, frames)`` weights (a window is surest of the frames it owns)."""
    windows, frames, _ = activity.shape
    sums = np.zeros((total, k), dtype=np.float32)
    norm = np.zeros(total, dtype=np.float32)
    for w, offset in enumerate(offsets.tolist()):
        span = slice(offset, offset + frames)
        norm[span] += weights[w]
        for c in np.unique(maps[w][maps[w] >= 0]).tolist():
            sums[span, c] += weights[w] * (maps[w] == c).any(axis=1)
    return np.divide(sums, norm[:, None], out=np.zeros_like(sums), where=norm[:, None] > 0)


def count(activity: Bools, offsets: Ints, total: int) -> Ints:
    """Speakers at each frame: the mean number of local speakers over the windows, rounded."""
    windows, frames, _ = activity.shape
    found = np.zeros(total, dtype=np.float32)
    covered = np.zeros(total, dtype=np.float32)
    for w, offset in enumerate(offsets.tolist()):
        found[offset : offset + frames] += activity[w].sum(axis=1)
        covered[offset : offset + frames] += 1
    mean = np.divide(found, covered, out=np.zeros_like(found), where=covered > 0)
    return np.rint(mean).astype(np.int64)


def place_unassigned(
    activity: Bools, maps: NDArray[np.int16], offsets: Ints, weights: Floats, k: int, total: int
) -> NDArray[np.int16]:
    """Clusters for local speakers no piece of which was embedded: the cluster the other
    windows hear most over their frames (not one a local speaker beside them holds)."""
    heard = aggregate(activity, maps, offsets, weights, k, total)
    out = maps.copy()
    windows, frames, speakers = activity.shape
    for w, offset in enumerate(offsets.tolist()):
        for s in range(speakers):
            mask = activity[w, :, s]
            if not mask.any() or (maps[w, :, s] >= 0).any():
                continue
            overlap = heard[offset : offset + frames][mask].sum(axis=0)
            for other in range(speakers):
                if other != s and (activity[w, :, other] & mask).any():
                    overlap[np.unique(maps[w, :, other][maps[w, :, other] >= 0])] = 0
            if overlap.max(initial=0.0) > 0:
                out[w, mask, s] = int(np.argmax(overlap))
    return out


def binarize(activity: Floats, speakers: Ints) -> Bools:
    """The ``speakers[t]`` most active clusters at each frame (of those active at all)."""
    order = np.argsort(-activity, axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(activity.shape[1])[None, :], axis=1)
    out: Bools = (rank < speakers[:, None]) & (activity > 0)
    return out


def turns(
    binary: Bools, frame_s: float, centre_s: float, duration: float, gap_s: float
) -> list[tuple[float, float, int]]:
    """``(start, end, cluster)`` turns ordered by start; a pause under ``gap_s`` within
    a speaker's speech is bridged when no one else speaks in it."""
    gap = round(gap_s / frame_s)
    anyone: Bools = np.asarray(binary.any(axis=1))
    out: list[tuple[float, float, int]] = []
    for c in range(binary.shape[1]):
        merged: list[list[int]] = []
        for a, b in runs(binary[:, c]):
            if merged and a - merged[-1][1] < gap and not anyone[merged[-1][1] : a].any():
                merged[-1][1] = b
            else:
                merged.append([a, b])
        for a, b in merged:
            start, end = a * frame_s + centre_s, min(duration, b * frame_s + centre_s)
            if end > start:
                out.append((start, end, c))
    return sorted(out)
