"""yt-dlp as a library: lazy channel listings, audio-only downloads, captions first.

Every network call runs under :func:`ragcast.sources.safety.guarded` (no internal
addresses, redirects included) and :class:`Throttle` (a pause between requests to one
platform, at most N downloads at once per platform), and transient HTTP failures (429,
5xx, timeouts) are retried with backoff honouring ``Retry-After``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ragcast.errors import ItemError, MediaError, TransientError
from ragcast.retry_after import parse_retry_after
from ragcast.settings import Settings
from ragcast.sources.platforms import listing_url
from ragcast.sources.safety import UnsafeAddressError, guarded

log = logging.getLogger(__name__)
T = TypeVar("T")

#: extractor classes tried before yt-dlp's own (tests register fixture extractors here)
EXTRA_EXTRACTORS: list[type[Any]] = []
CAPTION_FORMATS = "vtt/srt/best"


@dataclass(frozen=True, slots=True)
class FetchConfig:
    """What fetching needs from the settings."""

    allow_loopback: bool = False
    allow_generic: bool = False
    socket_timeout_s: float = 30.0
    retries: int = 4
    backoff_s: float = 2.0
    max_backoff_s: float = 120.0
    max_duration_s: float = 4 * 3600
    max_bytes: int = 1024**3
    pause_s: float = 1.0
    max_concurrent: int = 2
    languages: tuple[str, ...] = ("en",)

    @classmethod
    def from_settings(cls, settings: Settings) -> FetchConfig:
        """What the settings say fetching may do."""
        return cls(
            allow_loopback=settings.allow_loopback_fetch,
            allow_generic=settings.allow_generic_extractor,
            socket_timeout_s=settings.fetch_socket_timeout_s,
            retries=settings.fetch_retries,
            backoff_s=settings.fetch_backoff_s,
            pause_s=settings.fetch_pause_s,
            max_concurrent=settings.fetch_max_concurrent,
            max_duration_s=settings.max_media_duration_s,
            max_bytes=settings.max_media_bytes,
            languages=settings.caption_language_list,
        )


@dataclass(slots=True)
class Listed:
    """One entry of a channel listing."""

    id: str
    title: str | None
    duration: float | None
    upload_date: str | None
    url: str
    thumbnail: str | None


@dataclass(slots=True)
class Listing:
    """One page of a channel listing."""

    title: str | None
    channel: str | None
    items: list[Listed]
    has_more: bool


@dataclass(slots=True)
class Fetched:
    """What the fetch stage stores: a caption file or an audio file, and the metadata."""

    kind: str  # "captions" or "audio"
    path: Path
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def title(self) -> str | None:
        """The video's title."""
        return self.info.get("title")


class Throttle:
    """Per platform: at most ``max_concurrent`` at once and ``pause_s`` between starts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sems: dict[str, threading.BoundedSemaphore] = {}
        self._last: dict[str, float] = {}

    @contextmanager
    def slot(self, platform: str, cfg: FetchConfig) -> Iterator[None]:
        """Hold one of the platform's slots, started no sooner than the pause allows."""
        with self._lock:
            sem = self._sems.setdefault(platform, threading.BoundedSemaphore(cfg.max_concurrent))
        with sem:
            with self._lock:
                wait = self._last.get(platform, 0.0) + cfg.pause_s - time.monotonic()
                self._last[platform] = time.monotonic() + max(wait, 0.0)
            if wait > 0:
                time.sleep(wait)
            yield


THROTTLE = Throttle()


class _Logger:
    """yt-dlp's messages go to ragcast's log, not to stdout."""

    def debug(self, msg: str) -> None:
        log.debug("yt-dlp: %s", msg)

    def info(self, msg: str) -> None:
        log.debug("yt-dlp: %s", msg)

    def warning(self, msg: str) -> None:
        log.info("yt-dlp: %s", msg)

    def error(self, msg: str) -> None:
        log.info("yt-dlp: %s", msg)


def make_ydl(cfg: FetchConfig, **params: Any) -> Any:
    """A ``YoutubeDL`` with ragcast's defaults; extra extractors come first."""
    from yt_dlp import YoutubeDL

    base: dict[str, Any] = {
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "logger": _Logger(),
        "socket_timeout": cfg.socket_timeout_s,
        "retries": 0,  # ragcast retries whole calls with Retry-After in mind
        "extractor_retries": 0,
        "fragment_retries": 3,
        "noplaylist": True,
        "allowed_extractors": ["default"] if cfg.allow_generic else ["default", "-generic"],
        "cachedir": False,
        "color": "no_color",
    }
    base.update(params)
    ydl = YoutubeDL(base, auto_init=False)
    for ie in EXTRA_EXTRACTORS:
        ydl.add_info_extractor(ie())
    ydl.add_default_info_extractors()
    return ydl


def _http_status(exc: BaseException) -> tuple[int | None, float | None]:
    """The HTTP status and ``Retry-After`` seconds behind a yt-dlp error, when known."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        status = getattr(current, "status", None) or getattr(current, "code", None)
        if isinstance(status, int) and status >= 400:
            headers = getattr(getattr(current, "response", None), "headers", None) or getattr(
                current, "headers", None
            )
            retry_after = (
                parse_retry_after(headers.get("Retry-After")) if headers is not None else None
            )
            return status, retry_after
        info = getattr(current, "exc_info", None)
        nxt = info[1] if info and len(info) > 1 else None
        current = nxt or current.__cause__ or current.__context__
    return None, None


def _unsafe(exc: BaseException) -> UnsafeAddressError | None:
    """The guard's refusal behind a yt-dlp error (its handlers wrap what they catch)."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, UnsafeAddressError):
            return current
        info = getattr(current, "exc_info", None)
        linked = [info[1] if info and len(info) > 1 else None, current.__cause__]
        linked += [current.__context__, *getattr(current, "unexpected_errors", [])]
        todo.extend(e for e in linked if isinstance(e, BaseException))
    return None


def with_retries(call: Callable[[], T], cfg: FetchConfig, what: str) -> T:
    """Run ``call``; retry 429, 5xx and timeouts with backoff honouring ``Retry-After``."""
    from yt_dlp.utils import YoutubeDLError

    for attempt in range(cfg.retries + 1):
        try:
            return call()
        except (YoutubeDLError, OSError) as exc:
            unsafe = _unsafe(exc)
            if unsafe is not None:
                raise UnsafeAddressError(f"{what}: {unsafe.message}") from exc
            status, retry_after = _http_status(exc)
            transient = (
                status == 429
                or (status is not None and status >= 500)
                or (status is None and "timed out" in str(exc).lower())
            )
            if not transient:
                raise ItemError(f"{what}: {_clean(exc)}") from exc
            if attempt == cfg.retries:
                raise TransientError(f"{what}: {_clean(exc)}", retry_after) from exc
            delay = min(cfg.backoff_s * 2**attempt, cfg.max_backoff_s)
            if retry_after is not None:
                delay = max(delay, min(retry_after, cfg.max_backoff_s))
            log.info("%s: %s; retrying in %.1fs", what, _clean(exc), delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


def _clean(exc: BaseException) -> str:
    text = str(exc).replace("ERROR: ", "").strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def list_channel(
    url: str, cfg: FetchConfig, platform: str, *, start: int = 0, count: int = 50
) -> Listing:
    """Entries ``start`` .. ``start+count`` of a channel, fetching only those pages."""
    url = listing_url(url)
    ydl = make_ydl(
        cfg,
        extract_flat="in_playlist",
        noplaylist=False,
        playlist_items=f"{start + 1}:{start + count + 1}",  # one extra tells "has more"
        lazy_playlist=True,
    )
    with guarded(allow_loopback=cfg.allow_loopback), THROTTLE.slot(platform, cfg):
        info = with_retries(lambda: ydl.extract_info(url, download=False), cfg, "listing")
    if info is None:
        raise ItemError("the channel could not be listed")
    entries = [e for e in (info.get("entries") or []) if e]
    items = [
        Listed(
            id=str(e.get("id")),
            title=e.get("title"),
            duration=e.get("duration"),
            upload_date=e.get("upload_date"),
            url=e.get("url") or e.get("webpage_url") or "",
            thumbnail=_thumbnail(e),
        )
        for e in entries[:count]
    ]
    return Listing(
        title=info.get("title"),
        channel=info.get("channel") or info.get("uploader") or info.get("title"),
        items=items,
        has_more=len(entries) > count,
    )


def _thumbnail(entry: dict[str, Any]) -> str | None:
    if entry.get("thumbnail"):
        return str(entry["thumbnail"])
    thumbs = entry.get("thumbnails") or []
    return str(thumbs[-1].get("url")) if thumbs else None


def pick_captions(
    info: dict[str, Any], languages: tuple[str, ...], *, automatic: bool
) -> tuple[str, bool] | None:
    """The caption language to use and whether it is automatic; manual ones first."""
    pools = [(info.get("subtitles") or {}, False)]
    if automatic:
        pools.append((info.get("automatic_captions") or {}, True))
    for pool, auto in pools:
        for lang in languages:
            for key in pool:
                if key == lang or key.startswith(f"{lang}-"):
                    return key, auto
    return None


def caption_preference(
    info: dict[str, Any], fallback: tuple[str, ...], language: str | None
) -> tuple[str, ...]:
    """Caption languages in the order to try them.

    A job that names its language takes that track only (another language's captions are
    not a transcript of this speech). Otherwise the item's own language as the platform
    reports it comes first, then ``RAGCAST_CAPTION_LANGUAGES``.
    """
    if language:
        return (language,)
    own = info.get("language")
    first = (str(own).lower(),) if isinstance(own, str) and own else ()
    return first + tuple(lang for lang in fallback if lang not in first)


def fetch(
    url: str,
    dest: Path,
    cfg: FetchConfig,
    platform: str,
    *,
    captions: bool,
    automatic: bool,
    language: str | None = None,
) -> Fetched:
    """Captions when wanted and present, else the audio, under ``dest``.

    ``language`` is the job's spoken language when it names one (see
    :func:`caption_preference`).
    """
    dest.mkdir(parents=True, exist_ok=True)
    with guarded(allow_loopback=cfg.allow_loopback), THROTTLE.slot(platform, cfg):
        raw = with_retries(
            lambda: make_ydl(cfg).extract_info(url, download=False, process=False), cfg, "info"
        )
        if raw is None:
            raise ItemError("no information could be extracted for this URL")
        duration = raw.get("duration")
        if duration and duration > cfg.max_duration_s:
            raise ItemError(
                f"the media lasts {duration:.0f}s, longer than the {cfg.max_duration_s:.0f}s cap"
            )
        languages = caption_preference(raw, cfg.languages, language)
        track = pick_captions(raw, languages, automatic=automatic) if captions else None
        if track is not None:
            return _fetch_captions(raw, dest, cfg, track)
        return _fetch_audio(raw, dest, cfg)


def _fetch_captions(
    raw: dict[str, Any], dest: Path, cfg: FetchConfig, track: tuple[str, bool]
) -> Fetched:
    lang, auto = track
    ydl = make_ydl(
        cfg,
        skip_download=True,
        writesubtitles=not auto,
        writeautomaticsub=auto,
        subtitleslangs=[lang],
        subtitlesformat=CAPTION_FORMATS,
        outtmpl={"default": str(dest / "%(id)s.%(ext)s")},
    )
    info = with_retries(lambda: ydl.process_ie_result(dict(raw), download=True), cfg, "captions")
    sub = (info.get("requested_subtitles") or {}).get(lang) or {}
    path = sub.get("filepath")
    if not path or not Path(path).is_file():
        raise MediaError(f"the {lang} captions could not be downloaded")
    info["_ragcast_caption_lang"] = lang
    info["_ragcast_caption_auto"] = auto
    return Fetched(kind="captions", path=Path(path), info=info)


def _fetch_audio(raw: dict[str, Any], dest: Path, cfg: FetchConfig) -> Fetched:
    ydl = make_ydl(
        cfg,
        format="bestaudio/best",
        max_filesize=cfg.max_bytes,
        outtmpl={"default": str(dest / "%(id)s.%(ext)s")},
    )
    info = with_retries(lambda: ydl.process_ie_result(dict(raw), download=True), cfg, "download")
    downloads = info.get("requested_downloads") or []
    path = downloads[0].get("filepath") if downloads else None
    if not path or not Path(path).is_file():
        size = info.get("filesize") or info.get("filesize_approx")
        if size and size > cfg.max_bytes:
            raise ItemError(f"the media is {size} bytes, larger than the {cfg.max_bytes}-byte cap")
        raise ItemError(f"the media was not downloaded (larger than the {cfg.max_bytes}-byte cap?)")
    return Fetched(kind="audio", path=Path(path), info=info)
