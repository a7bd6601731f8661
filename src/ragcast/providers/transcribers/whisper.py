"""faster-whisper (CTranslate2): int8 on CPU, VAD, word timestamps."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragcast.errors import Interrupted, MediaError
from ragcast.pipeline.types import Segment, Transcript, Word
from ragcast.providers.transcribers.base import Transcriber


@dataclass(frozen=True, slots=True)
class WhisperConfig:
    """What :class:`WhisperTranscriber` needs from the settings."""

    model: str
    device: str = "cpu"
    compute_type: str = "int8"
    beam_size: int = 5
    cpu_threads: int = 0
    vad: bool = True


class WhisperTranscriber(Transcriber):
    """faster-whisper behind a lock: one model in memory, one decode at a time.

    CTranslate2 already uses every core for one decode, so running two at once on a
    small machine only makes both slower; the lock keeps memory at one model too.
    """

    name = "faster-whisper"

    def __init__(self, config: WhisperConfig) -> None:
        self.config = config
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        if self._model is None:
            from faster_whisper import WhisperModel

            self._model = WhisperModel(
                self.config.model,
                device=self.config.device,
                compute_type=self.config.compute_type,
                cpu_threads=self.config.cpu_threads,
            )
        return self._model

    def warm_up(self) -> None:
        """Load the model now rather than on the first item."""
        with self._lock:
            self._load()

    def transcribe(
        self,
        path: Path,
        *,
        language: str | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> Transcript:
        """Transcribe ``path`` with word timestamps."""
        with self._lock:
            model = self._load()
            out: list[Segment] = []
            try:
                segments, info = model.transcribe(
                    str(path),
                    beam_size=self.config.beam_size,
                    vad_filter=self.config.vad,
                    word_timestamps=True,
                    language=language,
                )
                for seg in segments:  # decoded lazily: a stop request is seen within one
                    if should_stop is not None and should_stop():
                        raise Interrupted("transcription stopped: the process is shutting down")
                    out.append(_segment(seg))
            except Interrupted:
                raise
            except Exception as exc:  # PyAV/ffmpeg raise many kinds for broken media
                raise MediaError(f"could not decode audio: {_reason(exc, path)}") from exc
        return Transcript(
            source="asr",
            language=info.language,
            duration_s=float(info.duration),
            segments=out,
        )


def _segment(seg: Any) -> Segment:
    words = [
        Word(text=w.word.strip(), start=float(w.start), end=float(w.end))
        for w in (seg.words or [])
        if w.word.strip()
    ]
    return Segment(text=seg.text.strip(), start=float(seg.start), end=float(seg.end), words=words)


def _reason(exc: Exception, path: Path) -> str:
    # Decoders name the file; the server's paths are nobody else's business.
    text = (str(exc).strip() or type(exc).__name__).replace(str(path), path.name)
    return text.splitlines()[0][:300]
