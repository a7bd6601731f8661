"""Deep links: a content URL that opens at the moment a chunk starts.

A pure function of the item's platform, URL and start time, so search, exports and the
platform fetchers can share it:

- YouTube (``youtube.com``, ``youtu.be``): ``t=93s`` added to the query (``?t=`` or
  ``&t=``), replacing any ``t`` already there.
- Twitch VODs (``twitch.tv/videos/ID``): ``?t=1h2m3s``, Twitch's own format.
- Anything else (TikTok, other pages): the URL unchanged, as those players take no time.
- No URL (uploads): ``None``.
"""

from __future__ import annotations

from urllib.parse import SplitResult, parse_qsl, urlencode, urlsplit, urlunsplit

YOUTUBE_HOSTS = ("youtube.com", "youtu.be", "youtube-nocookie.com")
TWITCH_HOSTS = ("twitch.tv",)


def deep_link(platform: str | None, url: str | None, start_s: float | None) -> str | None:
    """``url`` opened at ``start_s`` seconds where the platform's player supports it.

    The URL's host decides the format (a YouTube link found in a TikTok job is still a
    YouTube link); ``platform`` is kept in the signature for platforms whose links need
    it, and today only documents it.
    """
    if not url:
        return None
    if start_s is None or start_s < 0:
        return url
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    seconds = int(start_s)  # players seek to whole seconds; round down to hear the start
    if _on(host, YOUTUBE_HOSTS):
        return _with_t(parts, f"{seconds}s")
    if _on(host, TWITCH_HOSTS) and parts.path.startswith("/videos/"):
        return _with_t(parts, twitch_time(seconds))
    return url


def twitch_time(seconds: int) -> str:
    """Twitch's ``t`` value: ``1h2m3s``, leading zero units left out (``93`` → ``1m33s``)."""
    hours, rest = divmod(max(seconds, 0), 3600)
    minutes, secs = divmod(rest, 60)
    out = f"{hours}h" if hours else ""
    if hours or minutes:
        out += f"{minutes}m"
    return f"{out}{secs}s"


def _on(host: str, domains: tuple[str, ...]) -> bool:
    return any(host == d or host.endswith("." + d) for d in domains)


def _with_t(parts: SplitResult, value: str) -> str:
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "t"]
    query.append(("t", value))
    return urlunsplit(parts._replace(query=urlencode(query, safe=":/")))
