"""yt-dlp info-JSON fixtures and a local media server for the platform tests.

The fixtures are recorded shapes of YouTube, TikTok and Twitch entries and channel
listings (id, title, duration, upload date, channel, thumbnails, formats, subtitles),
with every media and caption URL pointing at the local server. A fixture extractor hands
them to yt-dlp, whose own code does the rest: playlist slicing, format selection,
subtitle selection, downloads.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from yt_dlp.extractor.common import InfoExtractor
from yt_dlp.utils import ExtractorError, OnDemandPagedList

from tests.conftest import DATA

FIXTURES: dict[str, Callable[[], dict[str, Any]]] = {}

VTT = """WEBVTT

00:00:00.000 --> 00:00:04.500
And so my fellow Americans, ask not

00:00:04.500 --> 00:00:08.000
what your country can do for you,

00:01:33.000 --> 00:01:38.000
ask what you can do for your country.
"""


class FixtureIE(InfoExtractor):
    """Answers fixture URLs with their recorded info dicts."""

    IE_NAME = "ragcastfixture"
    _VALID_URL = r"https?://(?:[a-z]+\.)?(?:youtube\.com|youtu\.be|tiktok\.com|twitch\.tv)/.+"

    @classmethod
    def suitable(cls, url: str) -> bool:
        return url in FIXTURES

    def _real_extract(self, url: str) -> dict[str, Any]:
        try:
            return FIXTURES[url]()
        except KeyError as exc:
            raise ExtractorError("Video unavailable", expected=True) from exc


class MediaServer:
    """Serves the shared recordings, caption files, 429s, redirects and an oversized file."""

    def __init__(self) -> None:
        self.hits: dict[str, int] = {}
        self.fail_429: dict[str, int] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_HEAD(self) -> None:
                self.do_GET()

            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                server.hits[path] = server.hits.get(path, 0) + 1
                if server.fail_429.get(path, 0) > 0:
                    server.fail_429[path] -= 1
                    self.send_response(429)
                    self.send_header("Retry-After", "1")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if path == "/redirect-metadata":
                    self.send_response(302)
                    self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if path.startswith("/captions/"):
                    body = VTT.encode()
                    ctype = "text/vtt"
                elif path.startswith("/media/"):
                    body = (DATA / path.removeprefix("/media/")).read_bytes()
                    ctype = "audio/wav" if path.endswith(".wav") else "audio/flac"
                else:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command == "GET":
                    self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def audio_format(server: MediaServer, file: str, **extra: Any) -> dict[str, Any]:
    """An audio-only format entry as yt-dlp extractors write them."""
    size = (DATA / file).stat().st_size
    ext = Path(file).suffix.lstrip(".")
    return {
        "format_id": f"audio-{ext}",
        "url": server.url(f"/media/{file}"),
        "ext": ext,
        "acodec": ext,
        "vcodec": "none",
        "abr": 128,
        "filesize": size,
        **extra,
    }


def video_info(
    server: MediaServer,
    platform: str,
    vid: str,
    file: str,
    *,
    title: str,
    captions: bool = False,
    auto_captions: bool = False,
    duration: float = 11.0,
    media_path: str | None = None,
) -> dict[str, Any]:
    """A single video's info dict (a YouTube watch page, a TikTok video, a Twitch VOD)."""
    urls = {
        "youtube": f"https://www.youtube.com/watch?v={vid}",
        "tiktok": f"https://www.tiktok.com/@creator/video/{vid}",
        "twitch": f"https://www.twitch.tv/videos/{vid.removeprefix('v')}",
    }
    fmt = audio_format(server, file)
    if media_path is not None:
        fmt["url"] = server.url(media_path)
    info: dict[str, Any] = {
        "id": vid,
        "title": title,
        "duration": duration,
        "upload_date": "20250105",
        "uploader": "Creator",
        "channel": "Creator Channel",
        "channel_id": "UCcreator",
        "webpage_url": urls[platform],
        "thumbnail": server.url(f"/thumbs/{vid}.jpg"),
        "formats": [
            # A video format too, so format selection has something to pass over.
            {
                **fmt,
                "format_id": "video-mp4",
                "vcodec": "avc1",
                "ext": "mp4",
                "height": 720,
                "filesize": (fmt["filesize"] or 0) * 4,
            },
            fmt,
        ],
        "subtitles": {},
        "automatic_captions": {},
    }
    track = [{"ext": "vtt", "url": server.url(f"/captions/{vid}.vtt"), "name": "English"}]
    if captions:
        info["subtitles"] = {"en": track}
    if auto_captions:
        info["automatic_captions"] = {"en": track}
    return info


def channel_info(
    server: MediaServer,
    platform: str,
    channel_url: str,
    n: int,
    make_entry: Callable[[int], dict[str, Any]],
) -> dict[str, Any]:
    """A channel listing of ``n`` flat entries, paged lazily like YouTube's tab pages."""
    page_size = 100
    pages_built: list[int] = []

    def page(index: int) -> Iterator[dict[str, Any]]:
        pages_built.append(index)
        for i in range(index * page_size, min((index + 1) * page_size, n)):
            yield make_entry(i)

    return {
        "_type": "playlist",
        "id": "UCcreator",
        "title": "Creator Channel - Videos",
        "channel": "Creator Channel",
        "uploader": "Creator",
        "webpage_url": channel_url,
        "entries": OnDemandPagedList(page, page_size),
        "_pages_built": pages_built,
    }


def register(url: str, info: dict[str, Any]) -> None:
    """Answer ``url`` with (a fresh copy of) ``info``."""
    pages = info.pop("_pages_built", None)

    def make() -> dict[str, Any]:
        out = {k: v for k, v in info.items() if k != "entries"}
        out = copy.deepcopy(out)
        if "entries" in info:
            out["entries"] = info["entries"]
        return out

    FIXTURES[url] = make
    if pages is not None:
        PAGES[url] = pages


PAGES: dict[str, list[int]] = {}
