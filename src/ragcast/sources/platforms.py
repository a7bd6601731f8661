"""What ragcast knows of each platform's URLs: which platform, which content id."""

from __future__ import annotations

import hashlib
import re
from urllib.parse import parse_qs, urlparse

PLATFORM_HOSTS = {
    "youtube": ("youtube.com", "youtu.be", "youtube-nocookie.com"),
    "tiktok": ("tiktok.com",),
    "twitch": ("twitch.tv",),
}

#: the shape of each platform's own ids; anything else is never used as (part of) an id
_PLATFORM_IDS = {
    "youtube": re.compile(r"[A-Za-z0-9_-]{11}"),
    "tiktok": re.compile(r"[0-9]{1,24}"),
    "twitch": re.compile(r"[A-Za-z0-9_-]{1,100}"),
}
_ANY_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def valid_id(platform: str, vid: str | None) -> bool:
    """Whether ``vid`` has the shape of ``platform``'s own ids (so it is safe in paths)."""
    if not vid:
        return False
    return _PLATFORM_IDS.get(platform, _ANY_ID).fullmatch(vid) is not None


def platform_of(url: str) -> str | None:
    """The platform whose host serves ``url``, or None."""
    host = (urlparse(url).hostname or "").lower()
    for platform, hosts in PLATFORM_HOSTS.items():
        if any(host == h or host.endswith("." + h) for h in hosts):
            return platform
    return None


def video_id(url: str) -> str | None:
    """The platform's own id of a single video/clip URL, when the URL shows a valid one."""
    vid = _raw_video_id(url)
    platform = platform_of(url)
    return vid if platform is not None and valid_id(platform, vid) else None


def _raw_video_id(url: str) -> str | None:
    parsed = urlparse(url)
    host = (parsed.hostname or "").lower()
    parts = [p for p in parsed.path.split("/") if p]
    if host.endswith("youtu.be") and parts:
        return parts[0]
    if "youtube" in host:
        vid = parse_qs(parsed.query).get("v", [None])[0]
        if vid:
            return vid
        if len(parts) >= 2 and parts[0] in ("shorts", "live", "embed", "v"):
            return parts[1]
    if "tiktok" in host and "video" in parts:
        index = parts.index("video")
        return parts[index + 1] if index + 1 < len(parts) else None
    if "twitch" in host:
        if host.startswith("clips.") and parts:
            return parts[0]
        if len(parts) >= 2 and parts[0] == "videos":
            return f"v{parts[1]}"
        if "clip" in parts and parts.index("clip") + 1 < len(parts):
            return parts[parts.index("clip") + 1]
    return None


def content_id(platform: str, vid: str | None, url: str) -> str:
    """ragcast's content id: ``platform-id``; a URL hash where no valid id can be read.

    Only ids of the platform's own shape (``[A-Za-z0-9_-]`` and the platform's length)
    are used as they are: a content id names directories, vector ids and export rows.
    """
    if valid_id(platform, vid):
        return f"{platform}-{vid}"
    return f"{platform}-url-{hashlib.sha256(url.encode()).hexdigest()[:16]}"


_YOUTUBE_TABS = ("videos", "shorts", "streams", "playlists", "live", "featured", "podcasts")


def listing_url(url: str) -> str:
    """The URL to list: a bare YouTube channel lists its videos tab.

    yt-dlp answers a channel's root with one nested playlist per tab; ragcast lists the
    uploads (``/videos``). Shorts, live streams and playlists are listed by their own
    URLs (``…/shorts``, ``…/streams``, ``playlist?list=…``).
    """
    parsed = urlparse(url)
    if platform_of(url) != "youtube":
        return url
    parts = [p for p in parsed.path.split("/") if p]
    is_channel = bool(parts) and (
        parts[0].startswith("@") or (parts[0] in ("channel", "c", "user") and len(parts) >= 2)
    )
    depth = 1 if parts and parts[0].startswith("@") else 2
    if is_channel and len(parts) == depth:
        return parsed._replace(path="/" + "/".join([*parts, "videos"])).geturl()
    return url
