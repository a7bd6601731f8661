"""The transcriber contract."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path

from ragcast.types import Transcript


class Transcriber(ABC):
    """Turns a media file into a :class:`Transcript` with word timestamps."""

    name: str = "transcriber"

    @abstractmethod
    def transcribe(
        self,
        path: Path,
        *,
        language: str | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> Transcript:
        """Transcribe ``path``; raises :class:`ragcast.errors.MediaError` on unreadable media.

        ``should_stop`` is polled between segments; when it answers true the work is
        abandoned with :class:`ragcast.errors.Interrupted`.
        """

    def warm_up(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Load what the first call would otherwise load (optional)."""
