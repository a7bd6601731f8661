"""Fixtures of the platform tests: the local media server and the fixture extractor."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ragcast.sources import ytdlp
from tests.sources.fixtures import FIXTURES, PAGES, FixtureIE, MediaServer


@pytest.fixture
def media() -> Iterator[MediaServer]:
    server = MediaServer()
    ytdlp.EXTRA_EXTRACTORS.append(FixtureIE)
    try:
        yield server
    finally:
        ytdlp.EXTRA_EXTRACTORS.remove(FixtureIE)
        FIXTURES.clear()
        PAGES.clear()
        server.close()
