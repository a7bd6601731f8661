"""Fixtures: the provider fakes on loopback ports, and clients that do not sleep."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ragcast.providers.embedders.http import HttpConfig, RetryPolicy
from tests.providers.embedders.fake_gemini import FakeGemini
from tests.providers.embedders.fake_jina import FakeJina


@pytest.fixture
def fake_jina() -> Iterator[FakeJina]:
    """A fresh Jina fake."""
    server = FakeJina()
    yield server
    server.close()


@pytest.fixture
def fake_gemini() -> Iterator[FakeGemini]:
    """A fresh Gemini fake."""
    server = FakeGemini()
    yield server
    server.close()


class Sleeps(list[float]):
    """A stand-in for ``time.sleep`` that records the waits instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    """Recorded waits."""
    return Sleeps()


def config(url: str, key: str, attempts: int = 4) -> HttpConfig:
    """An :class:`HttpConfig` with short timeouts for the fakes."""
    return HttpConfig(
        base_url=url,
        api_key=key,
        timeout_s=30,
        retry=RetryPolicy(attempts=attempts, backoff_s=0.01, max_backoff_s=5.0),
    )
