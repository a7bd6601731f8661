"""Deep links to the moment a chunk starts."""

from __future__ import annotations

import pytest

from ragcast.pipeline.links import deep_link, twitch_time


@pytest.mark.parametrize(
    ("platform", "url", "start", "expected"),
    [
        (
            "youtube",
            "https://www.youtube.com/watch?v=abc",
            93.7,
            "https://www.youtube.com/watch?v=abc&t=93s",
        ),
        ("youtube", "https://youtu.be/abc", 93.2, "https://youtu.be/abc?t=93s"),
        (
            "youtube",
            "https://m.youtube.com/watch?v=abc&t=5s",
            7,
            "https://m.youtube.com/watch?v=abc&t=7s",
        ),
        (
            "twitch",
            "https://www.twitch.tv/videos/123",
            3723,
            "https://www.twitch.tv/videos/123?t=1h2m3s",
        ),
        (
            "twitch",
            "https://www.twitch.tv/videos/123",
            93,
            "https://www.twitch.tv/videos/123?t=1m33s",
        ),
        ("twitch", "https://www.twitch.tv/somechannel", 93, "https://www.twitch.tv/somechannel"),
        ("tiktok", "https://www.tiktok.com/@u/video/1", 93, "https://www.tiktok.com/@u/video/1"),
        (
            "youtube",
            "https://www.youtube.com/watch?v=abc",
            None,
            "https://www.youtube.com/watch?v=abc",
        ),
        ("documents", None, 93, None),
        ("documents", "", 0, None),
    ],
)
def test_deep_links(
    platform: str, url: str | None, start: float | None, expected: str | None
) -> None:
    assert deep_link(platform, url, start) == expected


def test_twitch_time() -> None:
    assert [twitch_time(s) for s in (0, 5, 60, 3600, 3661)] == [
        "0s",
        "5s",
        "1m0s",
        "1h0m0s",
        "1h1m1s",
    ]
