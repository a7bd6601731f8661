"""The transcriber contract."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

from ragcast.pipeline.types import Transcript


class Transcriber(ABC):
    """Turns a media file into a :class:`Transcript` with word timestamps."""

    name: str = "transcriber"

    @abstractmethod
    def transcribe(self, path: Path, *, language: str | None = None) -> Transcript:
        """Transcribe ``path``; raises :class:`ragcast.errors.MediaError` on unreadable media."""

    def warm_up(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Load what the first call would otherwise load (optional)."""
