"""The diarizer contract: speaker turns of a recording, labelled ``SPEAKER_00``, ..."""

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
    """Who spoke when: turns in time order, labels numbered by first appearance."""

    turns: list[Turn]
    duration_s: float
    speakers: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.speakers:
            self.speakers = list(dict.fromkeys(t.speaker for t in self.turns))


class Diarizer(ABC):
    """Finds speaker turns in 16 kHz mono audio."""

    name: str = "diarizer"

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
