"""Safe fetching: no loopback, private, link-local or metadata address, redirects included."""

from __future__ import annotations

import socket
import urllib.request
from pathlib import Path

import pytest

from ragcast.errors import ItemError, ValidationError
from ragcast.sources.safety import UnsafeAddressError, check_url, guarded
from ragcast.sources.ytdlp import FetchConfig, fetch
from tests.sources.fixtures import MediaServer, register, video_info


@pytest.mark.parametrize(
    ("url", "issue"),
    [
        ("http://127.0.0.1/video", "loopback"),
        ("http://localhost:8000/video", "loopback"),  # a DNS name resolving to 127.0.0.1
        ("http://[::1]/x", "loopback"),
        ("http://10.1.2.3/x", "private"),
        ("http://192.168.0.10/x", "private"),
        ("http://172.16.5.4/x", "private"),
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://metadata.google.internal/computeMetadata/v1/", "metadata"),
        ("http://169.254.10.10/x", "link-local"),
        ("http://[fe80::1]/x", "link-local"),
        ("http://[::ffff:127.0.0.1]/x", "loopback"),
        ("http://0.0.0.0/x", "reserved"),
        ("file:///etc/passwd", "only http and https"),
        ("ftp://example.com/x", "only http and https"),
        ("gopher://example.com/x", "only http and https"),
        ("http:///nohost", "no host"),
    ],
)
def test_unsafe_urls_are_refused(url: str, issue: str) -> None:
    with pytest.raises(ValidationError) as info:
        check_url(url, field="pasted_urls[0]", allow_loopback=False)
    assert info.value.field == "pasted_urls[0]"
    assert issue in info.value.issue


def test_loopback_can_be_allowed_but_metadata_never() -> None:
    check_url("http://localhost:9/x", field="f", allow_loopback=True)
    with pytest.raises(ValidationError):
        check_url("http://169.254.169.254/", field="f", allow_loopback=True)


def test_the_guard_sees_every_connection_of_its_thread() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    port = sock.getsockname()[1]
    try:
        with guarded(allow_loopback=False), pytest.raises(UnsafeAddressError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
        # Outside the guard (or in another thread) connections are untouched.
        conn = socket.create_connection(("127.0.0.1", port), timeout=2)
        conn.close()
    finally:
        sock.close()


def test_a_redirect_to_the_metadata_address_fails_the_item(
    media: MediaServer, tmp_path: Path
) -> None:
    url = "https://www.youtube.com/watch?v=redir000001"
    register(
        url,
        video_info(
            media,
            "youtube",
            "redir000001",
            "clip02.wav",
            title="Redirect",
            media_path="/redirect-metadata",
        ),
    )
    cfg = FetchConfig(allow_loopback=True, pause_s=0.0, backoff_s=0.1)
    with pytest.raises(ItemError, match="cloud metadata address"):
        fetch(url, tmp_path, cfg, "youtube", captions=False, automatic=False)


def test_media_on_loopback_is_refused_unless_allowed(media: MediaServer, tmp_path: Path) -> None:
    url = "https://www.youtube.com/watch?v=local000001"
    register(url, video_info(media, "youtube", "local000001", "clip02.wav", title="Local"))
    cfg = FetchConfig(allow_loopback=False, pause_s=0.0, backoff_s=0.1)
    with pytest.raises(ItemError, match="loopback"):
        fetch(url, tmp_path, cfg, "youtube", captions=False, automatic=False)


@pytest.mark.parametrize(
    ("url", "listed"),
    [
        ("https://www.youtube.com/@creator", "https://www.youtube.com/@creator/videos"),
        ("https://www.youtube.com/@creator/shorts", "https://www.youtube.com/@creator/shorts"),
        ("https://www.youtube.com/channel/UC123", "https://www.youtube.com/channel/UC123/videos"),
        ("https://www.youtube.com/playlist?list=PL1", "https://www.youtube.com/playlist?list=PL1"),
        ("https://www.tiktok.com/@creator", "https://www.tiktok.com/@creator"),
        ("https://www.twitch.tv/creator/videos", "https://www.twitch.tv/creator/videos"),
    ],
)
def test_channel_roots_list_their_videos(url: str, listed: str) -> None:
    from ragcast.sources.platforms import listing_url

    assert listing_url(url) == listed


@pytest.mark.parametrize(
    ("url", "vid"),
    [
        ("https://www.youtube.com/watch?v=dQw4w9WgXcQ&t=3", "dQw4w9WgXcQ"),
        ("https://youtu.be/dQw4w9WgXcQ", "dQw4w9WgXcQ"),
        ("https://www.youtube.com/shorts/abcdefghijk", "abcdefghijk"),
        ("https://www.tiktok.com/@zachking/video/7516961325537332502", "7516961325537332502"),
        ("https://www.twitch.tv/videos/123456", "v123456"),
        ("https://clips.twitch.tv/FunnyClipSlug", "FunnyClipSlug"),
        ("https://www.twitch.tv/creator/clip/FunnyClipSlug", "FunnyClipSlug"),
        ("https://www.youtube.com/@creator", None),
    ],
)
def test_content_ids_come_from_the_url(url: str, vid: str | None) -> None:
    from ragcast.sources.platforms import video_id

    assert video_id(url) == vid
