"""yt-dlp used as a library: listing, captions first, audio downloads, caps, retries."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from ragcast.errors import ItemError
from ragcast.sources.ytdlp import FetchConfig, fetch, list_channel
from tests.sources.fixtures import PAGES, MediaServer, channel_info, register, video_info

CFG = FetchConfig(allow_loopback=True, pause_s=0.0, backoff_s=0.1)
CHANNEL = "https://www.youtube.com/@creator/videos"


def _entry(i: int) -> dict[str, Any]:
    vid = f"vid{i:08d}"[-11:]
    return {
        "_type": "url",
        "ie_key": "Youtube",
        "id": vid,
        "url": f"https://www.youtube.com/watch?v={vid}",
        "title": f"Episode {i}",
        "duration": 60.0 + i,
        "upload_date": "20250105",
        "thumbnails": [{"url": f"https://i.ytimg.com/vi/{vid}/hq.jpg"}],
    }


def test_a_5000_item_channel_answers_its_first_page_lazily(media: MediaServer) -> None:
    register(CHANNEL, channel_info(media, "youtube", CHANNEL, 5000, _entry))
    t0 = time.perf_counter()
    page = list_channel(CHANNEL, CFG, "youtube", start=0, count=50)
    elapsed = time.perf_counter() - t0
    print(f"first preview page of a 5,000-item listing: {elapsed * 1000:.0f} ms")
    assert [i.title for i in page.items[:2]] == ["Episode 0", "Episode 1"]
    assert len(page.items) == 50 and page.has_more
    assert PAGES[CHANNEL] == [0]  # only the first page of entries was built
    last = list_channel(CHANNEL, CFG, "youtube", start=4950, count=50)
    assert last.items[-1].title == "Episode 4999" and not last.has_more
    assert page.items[0].thumbnail and page.items[0].duration == 60.0


def test_captions_are_used_instead_of_speech(media: MediaServer, tmp_path: Path) -> None:
    url = "https://www.youtube.com/watch?v=capt0000001"
    register(
        url, video_info(media, "youtube", "capt0000001", "clip01.flac", title="JFK", captions=True)
    )
    got = fetch(url, tmp_path, CFG, "youtube", captions=True, automatic=False)
    assert got.kind == "captions" and got.path.suffix == ".vtt"
    assert "ask not" in got.path.read_text()
    assert media.hits.get("/media/clip01.flac") is None  # no audio was fetched


def test_automatic_captions_only_when_allowed(media: MediaServer, tmp_path: Path) -> None:
    url = "https://www.tiktok.com/@creator/video/7516961325537332502"
    register(
        url,
        video_info(
            media,
            "tiktok",
            "7516961325537332502",
            "clip02.wav",
            title="Quilter",
            auto_captions=True,
        ),
    )
    manual_only = fetch(url, tmp_path / "a", CFG, "tiktok", captions=True, automatic=False)
    assert manual_only.kind == "audio" and manual_only.path.read_bytes()[:4] == b"RIFF"
    auto = fetch(url, tmp_path / "b", CFG, "tiktok", captions=True, automatic=True)
    assert auto.kind == "captions"


def test_audio_only_format_is_chosen(media: MediaServer, tmp_path: Path) -> None:
    url = "https://www.twitch.tv/videos/123456"
    register(url, video_info(media, "twitch", "v123456", "clip03.wav", title="VOD"))
    got = fetch(url, tmp_path, CFG, "twitch", captions=True, automatic=True)
    assert got.kind == "audio" and got.path.suffix == ".wav"
    assert got.info["format_id"] == "audio-wav"


def test_a_429_is_retried_then_succeeds(media: MediaServer, tmp_path: Path) -> None:
    url = "https://www.youtube.com/watch?v=retry000001"
    register(url, video_info(media, "youtube", "retry000001", "clip05.wav", title="Retry"))
    media.fail_429["/media/clip05.wav"] = 2
    t0 = time.perf_counter()
    got = fetch(url, tmp_path, CFG, "youtube", captions=False, automatic=False)
    assert got.path.is_file()
    assert media.hits["/media/clip05.wav"] >= 3
    assert time.perf_counter() - t0 >= 2.0  # Retry-After: 1, twice, was honoured


def test_caps_on_duration_and_size(media: MediaServer, tmp_path: Path) -> None:
    long_url = "https://www.youtube.com/watch?v=long0000001"
    register(
        long_url,
        video_info(media, "youtube", "long0000001", "clip01.flac", title="Long", duration=5 * 3600),
    )
    with pytest.raises(ItemError, match="longer than"):
        fetch(long_url, tmp_path, CFG, "youtube", captions=False, automatic=False)
    big_url = "https://www.youtube.com/watch?v=big00000001"
    register(big_url, video_info(media, "youtube", "big00000001", "clip09.wav", title="Big"))
    small = FetchConfig(allow_loopback=True, pause_s=0.0, max_bytes=100_000)
    with pytest.raises(ItemError, match="larger than"):
        fetch(big_url, tmp_path, small, "youtube", captions=False, automatic=False)
    assert not list(tmp_path.glob("big*"))
