"""The faster-whisper transcriber on real recordings: batched long items, stops, bad media."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import jiwer
import pytest

from ragcast.errors import Interrupted, MediaError
from ragcast.providers.transcribers.models import resolve_model
from ragcast.providers.transcribers.whisper import WhisperConfig, WhisperTranscriber
from tests.api.test_end_to_end import normalise
from tests.conftest import Recording

pytestmark = pytest.mark.slow


def transcriber(**overrides: Any) -> WhisperTranscriber:
    values: dict[str, Any] = {"model": "base", "model_dir": resolve_model("base")}
    values.update(overrides)
    return WhisperTranscriber(WhisperConfig(**values))


class Spy:
    """Counts calls to the wrapped pipeline's ``transcribe``."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls = 0

    def transcribe(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return self.inner.transcribe(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_long_items_are_decoded_in_batches_with_word_timestamps(
    english_recordings: list[Recording],
) -> None:
    rec = max(english_recordings, key=lambda r: r.duration_s)  # clip09, 27 s
    t = transcriber(batch_min_duration_s=rec.duration_s - 5, batch_size=4)
    t.warm_up()
    spy = Spy(t._batched)
    t._batched = spy
    out = t.transcribe(rec.path)
    assert spy.calls == 1
    assert out.language == "en" and out.language_probability is not None
    wer = jiwer.wer(normalise(rec.reference), normalise(out.text))
    print(f"batched WER on {rec.path.name}: {wer:.3f}")
    assert wer < 0.2
    words = [w for s in out.segments for w in s.words]
    assert len(words) > 20
    starts = [w.start for w in words]
    assert starts == sorted(starts)
    assert all(w.start is not None and 0 <= w.start <= w.end <= rec.duration_s for w in words)
    # Short items stay on the sequential decoder.
    short = min(english_recordings, key=lambda r: r.duration_s)
    t.transcribe(short.path)
    assert spy.calls == 1


def test_a_stop_request_interrupts_between_segments(english_recordings: list[Recording]) -> None:
    stop = threading.Event()
    stop.set()
    with pytest.raises(Interrupted):
        transcriber().transcribe(english_recordings[0].path, should_stop=stop.is_set)


def test_broken_media_is_a_media_error_without_server_paths(tmp_path: Path) -> None:
    bad = tmp_path / "broken.mp3"
    bad.write_bytes(b"ID3" + b"\x00" * 64 + b"not audio at all" * 100)
    with pytest.raises(MediaError) as caught:
        transcriber().transcribe(bad)
    assert str(tmp_path) not in caught.value.message


def test_short_english_items_go_to_the_english_model_and_others_do_not(
    english_recordings: list[Recording],
) -> None:
    from tests.conftest import recordings

    t = transcriber(english_model_dir=resolve_model("tiny.en"), batch_min_duration_s=20)
    t.warm_up()
    english, main = Spy(t._english), Spy(t._model)
    t._english, t._model = english, main
    short = english_recordings[1]
    out = t.transcribe(short.path)
    assert (english.calls, main.calls) == (1, 0)
    assert out.language == "en" and out.language_probability is not None
    assert out.language_probability > 0.5
    german = next(r for r in recordings() if r.language == "de")
    out = t.transcribe(german.path)
    assert (english.calls, main.calls) == (1, 1) and out.language == "de"
    # A job that names English skips detection; a long English item stays on the batched
    # main model.
    assert t.transcribe(short.path, language="en").language_probability is None
    assert english.calls == 2
    longest = max(english_recordings, key=lambda r: r.duration_s)
    t.transcribe(longest.path)
    assert (english.calls, main.calls) == (2, 1)
