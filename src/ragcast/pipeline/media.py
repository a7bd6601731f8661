"""The recordings ragcast holds: finding the one to play, and its audio rendition.

A *recording* is an uploaded audio or video file (an ``Upload``) or a platform item's
fetched media (``Item.media_path``) while it is on disk. Browsers play WAV, FLAC, MP3,
Ogg/Opus, M4A and AAC as they are; anything else (video, AMR) gets an audio rendition,
Opus in WebM, made once with ffmpeg beside the original (``<name>.listen.webm``), under
a lock on the original (one ffmpeg per file, across threads and processes sharing the
data dir) and written through a ``.part`` file renamed into place. What is kept of a
recording once its jobs are done is :mod:`ragcast.pipeline.retention`'s business.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import subprocess
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from ragcast.errors import ConfigurationError, MediaError
from ragcast.settings import Settings
from ragcast.store.models import Item, Job, Upload

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: one rendition at a time in this process
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

#: what browsers play as it is, by the file's extension (as sniffed or fetched)
PLAYABLE: dict[str, str] = {
    "wav": "audio/wav",
    "flac": "audio/flac",
    "mp3": "audio/mpeg",
    "ogg": "audio/ogg",
    "oga": "audio/ogg",
    "opus": "audio/ogg",
    "m4a": "audio/mp4",
    "aac": "audio/aac",
}
#: the rendition: Opus in WebM (Chromium, Firefox, Edge and Safari play it)
RENDITION_SUFFIX = ".listen.webm"
RENDITION_TYPE = "audio/webm"
RENDITION_BITRATE = "64k"
#: the longest one rendition may take to make
RENDITION_TIMEOUT_S = 3600.0
_FALLBACK_LOCK = threading.Lock()


class MediaGone(MediaError):
    """The recording is no longer kept (retention, or its files were removed)."""


def rendition_path(settings: Settings, original: Path) -> Path:
    """Where the rendition of ``original`` lies: beside it, inside the data dir
    (ValueError when ``original`` is not inside the data dir)."""
    relative = original.resolve().relative_to(settings.data_dir.resolve())
    return settings.data_path(*relative.parent.parts, f"{relative.stem}{RENDITION_SUFFIX}")


def needs_rendition(original: Path) -> bool:
    """Whether browsers cannot play ``original`` as it is (video, AMR, unknown)."""
    return original.suffix.lower().lstrip(".") not in PLAYABLE


def content_type_of(path: Path) -> str:
    """The Content-Type a recording is served with."""
    if path.name.endswith(RENDITION_SUFFIX):
        return RENDITION_TYPE
    return PLAYABLE.get(path.suffix.lower().lstrip("."), "application/octet-stream")


@contextlib.contextmanager
def exclusive(original: Path) -> Iterator[None]:
    """Hold the recording's lock: ``flock`` on the original, which threads of one process
    (each with its own descriptor) and processes sharing the data dir all respect."""
    if fcntl is None:  # pragma: no cover
        with _FALLBACK_LOCK:
            yield
        return
    try:
        fd = os.open(original, os.O_RDONLY)
    except FileNotFoundError:
        yield  # nothing to make a rendition from, nor to delete
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def make_rendition(settings: Settings, original: Path) -> Path:
    """The rendition of ``original``, made once: concurrent callers wait for the first.

    MediaError when ffmpeg cannot make one (no audio stream, a broken file), MediaGone
    when the original is no longer there, ConfigurationError without ffmpeg.
    """
    target = rendition_path(settings, original)
    if target.is_file():
        return target
    with exclusive(original):
        if target.is_file():
            return target  # made while this call waited for the lock
        if not original.is_file():
            raise MediaGone("the recording is no longer kept")
        part = target.with_name(f"{target.name}.{os.getpid()}.{secrets.token_hex(4)}.part")
        try:
            _ffmpeg(original, part)
            os.replace(part, target)
        finally:
            part.unlink(missing_ok=True)
    log.info("made the audio rendition of %s", original.name)
    return target


def _ffmpeg(source: Path, out: Path) -> None:
    """Encode the first audio stream of ``source`` as Opus in WebM to ``out``."""
    binary = shutil.which("ffmpeg")
    if binary is None:
        raise ConfigurationError("ffmpeg is not installed: it makes playable audio of videos")
    command = [
        binary,
        *("-nostdin", "-hide_banner", "-loglevel", "error", "-y"),
        *("-i", str(source)),
        *("-map", "0:a:0", "-vn", "-sn", "-dn", "-map_metadata", "-1"),
        *("-c:a", "libopus", "-b:a", RENDITION_BITRATE, "-f", "webm", str(out)),
    ]
    try:
        run = subprocess.run(
            command, capture_output=True, text=True, timeout=RENDITION_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise MediaError("making the audio rendition took too long") from exc
    if run.returncode != 0 or not out.is_file() or out.stat().st_size == 0:
        detail = (run.stderr or "").strip().splitlines()
        raise MediaError(
            f"no playable audio could be made of the recording: {detail[-1] if detail else ''}"
        )


# -- finding a user's recording of a content ----------------------------------------------


@dataclass(frozen=True, slots=True)
class Recording:
    """One stored recording of a content: its original, its rendition, what is kept."""

    content_id: str
    original: Path
    rendition: Path
    #: the retention decided (``original``, ``audio``, ``none``); None while undecided
    kept: str | None

    @property
    def available(self) -> bool:
        """Whether there is something to play (without making anything)."""
        if self.kept == "none":
            return False
        return self.rendition.is_file() or self.original.is_file()

    def playable(self, settings: Settings) -> Path:
        """The file to serve: the rendition, or the original where browsers play it as it
        is; the rendition is made on first use. MediaGone when nothing is kept."""
        if self.kept == "none":
            raise MediaGone("the recording is no longer kept")
        if self.rendition.is_file():
            return self.rendition
        if not self.original.is_file():
            raise MediaGone("the recording is no longer kept")
        if self.kept != "audio" and not needs_rendition(self.original):
            return self.original
        return make_rendition(settings, self.original)


def find_recordings(
    s: Session, settings: Settings, user_id: int, content_ids: Iterable[str]
) -> dict[str, list[Recording]]:
    """The user's recordings of each content, newest item first (a content without one
    is left out): its uploads, and its fetched platform media."""
    ids = sorted(set(content_ids))
    if not ids:
        return {}
    rows = s.execute(
        select(
            Item.content_id,
            Item.source_type,
            Item.media_path,
            Item.content_type,
            Item.media_kept,
            Upload.path,
            Upload.kind,
            Upload.media_kept,
        )
        .join(Job, Job.id == Item.job_pk)
        .outerjoin(
            Upload,
            and_(
                Item.source_type == "upload",
                Upload.document_id == Item.source_ref,
                Upload.user_id == Job.user_id,
            ),
        )
        .where(Job.user_id == user_id, Item.content_id.in_(ids))
        .order_by(Item.id.desc())
    ).all()
    found: dict[str, list[Recording]] = {}
    seen: set[str] = set()
    for cid, source, media, ctype, item_kept, up_path, up_kind, up_kept in rows:
        if source == "upload":
            if up_path is None or up_kind not in ("audio", "video"):
                continue
            path, kept = str(up_path), up_kept
        else:
            if media is None or not (ctype or "").startswith(("audio/", "video/")):
                continue
            path, kept = str(media), item_kept
        if path in seen:
            continue
        seen.add(path)
        try:
            rendition = rendition_path(settings, Path(path))
        except ValueError:
            log.warning("a recording of %s lies outside the data dir; not served", cid)
            continue
        found.setdefault(cid, []).append(Recording(cid, Path(path), rendition, kept))
    return found
