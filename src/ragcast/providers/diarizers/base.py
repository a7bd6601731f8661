"""The diarizer contract: speaker turns of a recording, labelled ``SPEAKER_00``, ...

Turns may overlap (two people talking at once are two overlapping turns). A diarizer may
also give each speaker's centroid in its embedding model's space (to recognise a voice
across recordings) and frame-level activity (to give a word spoken during overlap to the
speaker most active over its span).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True, slots=True)
class Turn:
    """One speaker's stretch of the recording, in seconds."""

    start: float
    end: float
    speaker: str


@dataclass(slots=True)
class Diarization:
    """Who spoke when: turns ordered by start, labels numbered by first appearance.

    ``centroids`` maps each label to its unit-norm mean embedding in the space named by
    ``embedding_model`` (vectors of different models are not comparable). ``activity``,
    where given, is ``(frames, len(speakers))`` in ``speakers`` order, values in [0, 1]:
    row ``i`` describes the instant ``frame_start_s + i * frame_s``.
    """

    turns: list[Turn]
    duration_s: float
    speakers: list[str] = field(default_factory=list)
    centroids: dict[str, list[float]] = field(default_factory=dict)
    embedding_model: str = ""
    activity: NDArray[np.float32] | None = None
    frame_s: float = 0.0
    frame_start_s: float = 0.0

    def __post_init__(self) -> None:
        if not self.speakers:
            self.speakers = list(dict.fromkeys(t.speaker for t in self.turns))

    def most_active(self, start: float, end: float) -> str | None:
        """The speaker most active over ``[start, end]`` (by frame activity where there
        is some, else by turn overlap); None when no one speaks then."""
        if self.activity is not None and self.frame_s > 0 and len(self.activity):
            first = int(np.floor((start - self.frame_start_s) / self.frame_s))
            last = int(np.ceil((end - self.frame_start_s) / self.frame_s))
            rows = self.activity[max(0, first) : max(0, min(len(self.activity), last + 1))]
            if len(rows) and float(rows.sum()) > 0:
                return self.speakers[int(np.argmax(rows.sum(axis=0)))]
        overlap: dict[str, float] = {}
        for t in self.turns:
            shared = min(end, t.end) - max(start, t.start)
            if shared > 0:
                overlap[t.speaker] = overlap.get(t.speaker, 0.0) + shared
        return max(overlap, key=overlap.__getitem__) if overlap else None


class Diarizer(ABC):
    """Finds speaker turns in 16 kHz mono audio."""

    name: str = "diarizer"
    #: the space its speaker centroids are in ("" when it gives none)
    embedding_model: str = ""

    @abstractmethod
    def diarize(
        self,
        audio: NDArray[np.float32],
        *,
        min_speakers: int | None = None,
        max_speakers: int | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> Diarization:
        """The turns of ``audio``; a recording without voice has none."""
