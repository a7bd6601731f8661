"""CAM++ embeddings of any set of pieces of a local speaker's voice, each encoded once.

The encoder runs once over each piece's fbank frames (on its own: its context-aware layers
would otherwise blend the voices of a local speaker the segmentation model ran together);
what it pools into an embedding, the mean and standard deviation of 512 frame-level
features, is kept per piece as sums, so the embedding of any set of pieces (one piece, a
segment of several, everything a speaker said) is computed after the fact by the
encoder's last layer alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ragcast.errors import Interrupted

Floats = NDArray[np.float32]
Ints = NDArray[np.int64]

FEATURES = 512  # frame-level features the encoder pools
#: encoder inputs are cut to a multiple of this many frames (their middle) and batched only
#: with inputs of the same length, so no embedding depends on what it was batched with
LENGTH_STEP = 25
#: inputs per encoder batch (its activations grow with it, about 25 MB an input)
BATCH = 8


@dataclass(slots=True)
class Stats:
    """Per piece: frame-level feature count, sum and sum of squares."""

    counts: NDArray[np.float64]  # (pieces,)
    sums: NDArray[np.float64]  # (pieces, 512)
    squares: NDArray[np.float64]  # (pieces, 512)

    @classmethod
    def empty(cls, pieces: int) -> Stats:
        """Zeros for ``pieces`` pieces."""
        return cls(np.zeros(pieces), np.zeros((pieces, FEATURES)), np.zeros((pieces, FEATURES)))


class Pooler:
    """The encoder's last layer in NumPy: pooled statistics -> unit embedding."""

    def __init__(self, encoder: object) -> None:
        dense = encoder.xvector.dense  # type: ignore[attr-defined]
        self.weight = dense.linear.weight.detach().numpy()[:, :, 0].astype(np.float64)
        norm = dense.nonlinear.batchnorm
        self.mean = norm.running_mean.detach().numpy().astype(np.float64)
        self.scale = 1 / np.sqrt(norm.running_var.detach().numpy().astype(np.float64) + norm.eps)

    def __call__(
        self, counts: NDArray[np.float64], sums: NDArray[np.float64], squares: NDArray[np.float64]
    ) -> Floats:
        """Unit embeddings ``(n, 192)`` of ``n`` sets of frames given by their sums."""
        n = np.maximum(counts, 2.0)[:, None]
        mean = sums / n
        std = np.sqrt(np.maximum(squares - n * mean**2, 0.0) / (n - 1))
        raw = (np.concatenate([mean, std], axis=1) @ self.weight.T - self.mean) * self.scale
        norms = np.maximum(np.linalg.norm(raw, axis=1, keepdims=True), 1e-9)
        return np.asarray(raw / norms, dtype=np.float32)


def _batches(n: int, size: int) -> Iterator[range]:
    for first in range(0, n, size):
        yield range(first, min(n, first + size))


def accumulate(
    encoder: object,
    inputs: list[tuple[int, Floats]],
    stats: Stats,
    should_stop: Callable[[], bool] | None = None,
) -> None:
    """Encode each ``(piece, fbank frames)`` of ``inputs`` and add its sums to ``stats``
    (inputs shorter than ``LENGTH_STEP`` frames are left out); ``should_stop`` is asked
    before every batch."""
    import torch

    by_length: dict[int, list[tuple[int, Floats]]] = {}
    for piece, frames in inputs:
        length = len(frames) - len(frames) % LENGTH_STEP
        if length:
            cut = (len(frames) - length) // 2  # the middle
            by_length.setdefault(length, []).append((piece, frames[cut : cut + length]))
    for _, group in sorted(by_length.items()):
        for batch in _batches(len(group), BATCH):
            if should_stop is not None and should_stop():
                raise Interrupted("the process is shutting down")
            stack = np.stack([group[n][1] - group[n][1].mean(axis=0) for n in batch])
            with torch.inference_mode():
                out = encoder.frames(torch.from_numpy(stack.astype(np.float32)))  # type: ignore[attr-defined]
            features = out.numpy().astype(np.float64)  # (batch, 512, frames / 2)
            for row, n in enumerate(batch):
                piece = group[n][0]
                stats.counts[piece] += features.shape[2]
                stats.sums[piece] += features[row].sum(axis=1)
                stats.squares[piece] += (features[row] ** 2).sum(axis=1)
