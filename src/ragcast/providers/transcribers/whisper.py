"""faster-whisper (CTranslate2): multilingual, batched for long recordings, CPU or CUDA.

Policy, all of it here rather than in the stage:

- **Device.** ``device="auto"`` takes CUDA when CTranslate2 sees a GPU and the CPU
  otherwise; ``compute_type="auto"`` is ``float16`` on CUDA and ``int8`` on the CPU.
- **Batching.** A recording of ``batch_min_duration_s`` (60 s) or more goes through
  faster-whisper's ``BatchedInferencePipeline``: VAD cuts it into speech windows of up to
  30 s that are decoded ``batch_size`` at a time (8 on the CPU, 16 on CUDA). Shorter
  recordings are a single window or two, where batching has nothing to batch, and use
  the sequential decoder, which conditions each window on the previous text.
- **Language.** Detected per item (with its probability) unless the job names one.
- **English.** With an English-only companion model (``english_model_dir``, the packaged
  ``tiny.en`` by default), a short item whose language is English is decoded by it: on
  the shared English recordings it scores 3.1 % WER against 5.6 % for multilingual
  ``base``, at twice the speed. Long English items stay on the main model, whose batched
  decoding is the more accurate of the two (7.7 % against 16 % WER on 5.8 minutes).
- **Checks.** :mod:`ragcast.providers.transcribers.quality` drops repetition loops and
  fails an item whose decoding is nonsense or holds no speech.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragcast.errors import Interrupted, MediaError
from ragcast.providers.transcribers.base import Transcriber
from ragcast.providers.transcribers.quality import DecodedSegment, check_decoding
from ragcast.types import Segment, Transcript, Word

SAMPLE_RATE = 16_000


@dataclass(frozen=True, slots=True)
class WhisperConfig:
    """What :class:`WhisperTranscriber` needs from the settings."""

    model: str
    #: the local folder ``model`` resolved to (see ``transcribers.models``)
    model_dir: str = ""
    device: str = "auto"
    compute_type: str = "auto"
    beam_size: int = 5
    cpu_threads: int = 0
    vad: bool = True
    #: windows decoded at once by the batched pipeline; 0 picks 8 on the CPU, 16 on CUDA
    batch_size: int = 0
    #: recordings at least this long use the batched pipeline
    batch_min_duration_s: float = 60.0
    multilingual: bool = True
    #: an English-only model for short English items ("" for none)
    english_model_dir: str = ""


def cuda_available() -> bool:
    """Whether CTranslate2 sees a CUDA device."""
    try:
        import ctranslate2

        return bool(ctranslate2.get_cuda_device_count() > 0)
    except Exception:  # noqa: BLE001 - no driver, no CUDA build: the CPU it is
        return False


def resolve_device(device: str, compute_type: str) -> tuple[str, str]:
    """The concrete device and compute type for the ``auto`` values."""
    if device == "auto":
        device = "cuda" if cuda_available() else "cpu"
    if compute_type in ("auto", "default"):
        compute_type = "float16" if device == "cuda" else "int8"
    return device, compute_type


class WhisperTranscriber(Transcriber):
    """faster-whisper behind a lock: one model in memory, one decode at a time.

    CTranslate2 already uses every core (or the whole GPU, through batching) for one
    decode, so two at once only make both slower; the lock keeps memory at one model too.
    """

    name = "faster-whisper"

    def __init__(self, config: WhisperConfig) -> None:
        self.config = config
        self.device, self.compute_type = resolve_device(config.device, config.compute_type)
        self.batch_size = config.batch_size or (16 if self.device == "cuda" else 8)
        self._model: Any = None
        self._batched: Any = None
        self._english: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        if self._model is None:
            from faster_whisper import BatchedInferencePipeline, WhisperModel

            self._model = WhisperModel(
                self.config.model_dir or self.config.model,
                device=self.device,
                compute_type=self.compute_type,
                cpu_threads=self.config.cpu_threads,
            )
            self._batched = BatchedInferencePipeline(self._model)
            if self.config.english_model_dir and self.config.multilingual:
                self._english = WhisperModel(
                    self.config.english_model_dir,
                    device=self.device,
                    compute_type=self.compute_type,
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
        """Transcribe ``path`` with word timestamps, detecting the language unless given."""
        with self._lock:
            self._load()
            try:
                audio = _decode(path)
                segments, info, detected = self._run(audio, language)
                decoded = _collect(segments, should_stop)
            except Interrupted:
                raise
            except MediaError:
                raise
            except Exception as exc:  # PyAV/ffmpeg raise many kinds for broken media
                raise MediaError(f"could not decode audio: {_reason(exc, path)}") from exc
        code, found = detected or (info.language, float(info.language_probability))
        probability: float | None = found
        if language is not None:
            code, probability = language, None
        keep, warnings = check_decoding(
            [d for d, _ in decoded],
            model=self.config.model,
            multilingual=self.config.multilingual,
            language=code,
            language_probability=probability,
            language_given=language is not None,
        )
        return Transcript(
            source="asr",
            language=code,
            duration_s=len(audio) / SAMPLE_RATE,
            segments=[decoded[n][1] for n in keep],
            language_probability=probability,
            warnings=warnings,
        )

    def _run(
        self, audio: Any, language: str | None
    ) -> tuple[Iterable[Any], Any, tuple[str, float] | None]:
        """Start decoding: batched for long recordings, sequential for short ones.

        Returns the segments, faster-whisper's info, and the language with its probability
        when it was detected here, before the decoder was chosen.
        """
        cfg = self.config
        if not len(audio):
            raise MediaError("the recording holds no audio")
        options: dict[str, Any] = {
            "language": language if cfg.multilingual else "en",
            "beam_size": cfg.beam_size,
            "word_timestamps": True,
        }
        if cfg.vad and self.batch_size > 1 and len(audio) >= cfg.batch_min_duration_s * SAMPLE_RATE:
            segments, info = self._batched.transcribe(
                audio, batch_size=self.batch_size, vad_filter=True, **options
            )
            return segments, info, None
        detected = None
        if self._english is not None:
            if language is None:
                code, probability, _ = self._model.detect_language(audio, vad_filter=cfg.vad)
                detected = (code, float(probability))
                options["language"] = code
            if options["language"] == "en":
                segments, info = self._english.transcribe(
                    audio, vad_filter=cfg.vad, **{**options, "language": "en"}
                )
                return segments, info, detected
        segments, info = self._model.transcribe(audio, vad_filter=cfg.vad, **options)
        return segments, info, detected


def _decode(path: Path) -> Any:
    from faster_whisper import decode_audio

    return decode_audio(str(path), sampling_rate=SAMPLE_RATE)


def _collect(
    segments: Iterable[Any], should_stop: Callable[[], bool] | None
) -> list[tuple[DecodedSegment, Segment]]:
    out = []
    for seg in segments:  # decoded lazily: a stop request is seen within one window
        if should_stop is not None and should_stop():
            raise Interrupted("transcription stopped: the process is shutting down")
        text = seg.text.strip()
        if not text:
            continue
        stats = DecodedSegment(
            text=text,
            start=float(seg.start),
            end=float(seg.end),
            avg_logprob=float(seg.avg_logprob),
        )
        out.append((stats, _segment(seg)))
    return out


def _segment(seg: Any) -> Segment:
    words = [
        Word(
            text=w.word.strip(),
            start=float(w.start),
            end=float(w.end),
            probability=_probability(getattr(w, "probability", None)),
        )
        for w in (seg.words or [])
        if w.word.strip()
    ]
    return Segment(text=seg.text.strip(), start=float(seg.start), end=float(seg.end), words=words)


def _probability(value: Any) -> float | None:
    """A word's probability as a float in [0, 1], or None when the recogniser gave none."""
    if value is None:
        return None
    p = float(value)
    return min(max(p, 0.0), 1.0) if math.isfinite(p) else None


def _reason(exc: Exception, path: Path) -> str:
    # Decoders name the file; the server's paths are nobody else's business.
    text = (str(exc).strip() or type(exc).__name__).replace(str(path), path.name)
    return text.splitlines()[0][:300]
