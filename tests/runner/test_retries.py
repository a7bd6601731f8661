"""Transient failures are retried with backoff; after the last retry the item fails."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ragcast.errors import TransientError
from ragcast.providers.transcribers.whisper import WhisperTranscriber
from tests.conftest import PREFIX, Api, Recording


def test_a_provider_outage_is_retried_then_passes(
    api_factory: Callable[..., Api],
    english_recordings: list[Recording],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = WhisperTranscriber.transcribe
    calls: list[int] = []

    def flaky(self: WhisperTranscriber, path: Path, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) <= 2:
            raise TransientError("speech service overloaded", retry_after=0.01)
        return real(self, path, **kwargs)

    monkeypatch.setattr(WhisperTranscriber, "transcribe", flaky)
    api = api_factory(max_retries=3, retry_min_backoff_ms=10)
    assert api.submit("flaky", [api.upload(english_recordings[1].path)]).status_code == 200
    status = api.wait("flaky")
    assert status["status"] == "completed", status
    item = api.client.get(f"{PREFIX}/job/flaky/items", headers=api.h()).json()["items"][0]
    assert len(calls) == 3
    assert item["attempts"] == 5 + 2  # one run per stage, two more of the transcription


def test_after_the_last_retry_the_item_fails_with_its_reason(
    api_factory: Callable[..., Api],
    english_recordings: list[Recording],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def down(self: WhisperTranscriber, path: Path, **kwargs: Any) -> Any:
        raise TransientError("speech service unavailable")

    monkeypatch.setattr(WhisperTranscriber, "transcribe", down)
    api = api_factory(max_retries=2, retry_min_backoff_ms=10)
    docs = [api.upload(english_recordings[1].path)]
    assert api.submit("down", docs).status_code == 200
    status = api.wait("down")
    assert status["status"] == "failed"
    item = api.client.get(f"{PREFIX}/job/down/items", headers=api.h()).json()["items"][0]
    assert item["status"] == "failed"
    assert item["error"] == "speech service unavailable (gave up after retries)"
    assert item["stage"] == "fetched"  # the finished stage is kept for a later retry
