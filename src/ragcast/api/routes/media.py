"""``GET /media/{content_id}``: the recording of an item, streamed, with byte ranges.

Its owner asks with the API key, or a browser follows a signed link (``?token=``, the
``media_url`` of search hits and transcripts: :class:`~ragcast.tickets.MediaSigner`), since
``<audio src>`` sends no ``Authorization`` header. Video and formats browsers do not play
are served as an audio rendition made once (:mod:`ragcast.pipeline.media`).

Ranges (RFC 9110 §14): one ``bytes=first-last``, ``bytes=first-`` or ``bytes=-suffix``
gets ``206`` with ``Content-Range``; a range that starts past the end (or an empty
suffix) gets ``416`` with ``Content-Range: bytes */size`` and the contract's error body;
a malformed ``Range``, another unit, several ranges or an ``If-Range`` that no longer
matches are ignored and the whole file is sent (``200``), as the RFC allows.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from email.utils import formatdate
from typing import Annotated
from urllib.parse import quote

import anyio
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from ragcast.api.deps import Ctx, bearer, principal_of
from ragcast.api.errors import error_body
from ragcast.api.ratelimit import RateLimiter
from ragcast.api.schemas import error_responses
from ragcast.auth import Principal
from ragcast.context import Context
from ragcast.errors import MediaError, NotFoundError, RateLimitError
from ragcast.pipeline.media import MediaGone, content_type_of, find_recordings
from ragcast.tickets import MediaSigner, redeem_media_link

router = APIRouter(tags=["media"])

#: bytes read from disk per chunk of the answer
CHUNK = 256 * 1024
_RANGE = re.compile(r"\s*bytes\s*=\s*(\d{0,19})\s*-\s*(\d{0,19})\s*", re.IGNORECASE)

ContentIdPath = Annotated[
    str, PathParam(min_length=1, max_length=128, description="The item's `content_id`")
]


async def media_user(
    request: Request,
    content_id: ContentIdPath,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    token: Annotated[
        str | None,
        Query(
            max_length=256,
            description="A signed media link's token (the `media_url` of a hit or "
            "transcript), for players that cannot send `Authorization`",
        ),
    ] = None,
) -> Principal:
    """The user a media request acts for: the bearer key's, else the signed link's; the
    request counts in the ``read`` rate limit either way."""
    if creds is not None or token is None:
        principal = await principal_of(request, creds.credentials if creds else None)
    else:
        ctx: Context = request.app.state.ctx
        signer: MediaSigner = request.app.state.media_signer

        def redeem() -> Principal:
            with ctx.db.session() as s:
                return redeem_media_link(s, signer, token, content_id)

        principal = await run_in_threadpool(redeem)
    state = request.scope.setdefault("state", {})
    limiter: RateLimiter = request.app.state.limiter
    try:
        counted = await limiter.acount("read", principal.user_id, admin=principal.is_admin)
    except RateLimitError as exc:
        state["rate_headers"] = exc.headers
        raise
    state["rate_headers"] = counted.state.headers()
    state["rate_hit"] = counted
    return principal


MediaUser = Annotated[Principal, Depends(media_user)]


# -- links --------------------------------------------------------------------------------


def media_url(request: Request, principal: Principal, content_id: str) -> str:
    """The signed, expiring link to ``content_id``'s recording for ``principal``."""
    signer: MediaSigner = request.app.state.media_signer
    token = signer.sign(principal.user_id, principal.key_id, content_id)
    public = request.app.state.ctx.settings.public_url
    path = str(request.app.url_path_for("get_media", content_id=content_id))
    base = public.rstrip("/") if public else str(request.base_url).rstrip("/")
    return f"{base}{path}?token={quote(token, safe='')}"


def media_links(
    ctx: Context, request: Request, principal: Principal, content_ids: Iterable[str]
) -> dict[str, str]:
    """``media_url`` of each content the user still has a recording of (none is left out:
    a link never points at nothing). Reads the store: call it off the event loop."""
    if principal.key_id <= 0:
        return {}  # a link must name the key it dies with
    with ctx.db.session() as s:
        found = find_recordings(s, ctx.settings, principal.user_id, content_ids)
    return {
        cid: media_url(request, principal, cid)
        for cid, recordings in found.items()
        if any(r.available for r in recordings)
    }


# -- serving ------------------------------------------------------------------------------


@dataclass
class _Opened:
    """A recording opened for one answer: the descriptor, what it is, when it changed."""

    fd: int
    size: int
    mtime: float
    mtime_ns: int
    content_type: str
    filename: str
    closed: bool = False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self.fd)

    @property
    def etag(self) -> str:
        return f'"{self.size:x}-{self.mtime_ns:x}"'


def _open(ctx: Context, user_id: int, content_id: str) -> _Opened:
    """The user's playable recording of ``content_id``, opened (a rendition is made on
    first use); NotFoundError when there is none, or it is no longer kept."""
    with ctx.db.session() as s:
        recordings = find_recordings(s, ctx.settings, user_id, [content_id]).get(content_id)
    if not recordings:
        raise NotFoundError(f"No recording of content {content_id!r}")
    reason = f"The recording of {content_id!r} is no longer kept"
    for recording in recordings:
        try:
            path = recording.playable(ctx.settings)
            fd = os.open(path, os.O_RDONLY)
        except (MediaGone, FileNotFoundError):
            continue
        except MediaError as exc:
            reason = f"The recording of {content_id!r} cannot be played: {exc.message}"
            continue
        st = os.fstat(fd)
        name = f"{content_id}{path.suffix}"
        return _Opened(fd, st.st_size, st.st_mtime, st.st_mtime_ns, content_type_of(path), name)
    raise NotFoundError(reason)


class Unsatisfiable(Exception):
    """A well-formed range that selects nothing of the file."""


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive ``(first, last)`` byte a ``Range`` header asks for; None to send the
    whole file (no header, or one to ignore); Unsatisfiable when it selects nothing."""
    if not header:
        return None
    match = _RANGE.fullmatch(header)
    if match is None:
        return None  # another unit, several ranges, or malformed: ignored
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # a suffix: the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise Unsatisfiable
        return max(0, size - suffix), size - 1
    start = int(first)
    if last and int(last) < start:
        return None  # invalid: ignored
    if start >= size:
        raise Unsatisfiable
    return start, min(int(last) if last else size - 1, size - 1)


def _range_applies(request: Request, opened: _Opened) -> bool:
    """Whether an ``If-Range`` (if any) still names this version of the file."""
    condition = request.headers.get("if-range")
    if condition is None:
        return True
    condition = condition.strip()
    return condition in (opened.etag, formatdate(opened.mtime, usegmt=True))


async def _stream(opened: _Opened, start: int, length: int) -> AsyncIterator[bytes]:
    try:
        offset, left = start, length
        while left > 0:
            block = await anyio.to_thread.run_sync(os.pread, opened.fd, min(CHUNK, left), offset)
            if not block:
                break
            offset += len(block)
            left -= len(block)
            yield block
    finally:
        opened.close()


_MEDIA_CONTENT = {
    "audio/*": {"schema": {"type": "string", "format": "binary"}},
}


@router.get(
    "/media/{content_id}",
    operation_id="getMedia",
    response_class=Response,
    responses={
        200: {"content": _MEDIA_CONTENT, "description": "The whole recording"},
        206: {"content": _MEDIA_CONTENT, "description": "The range asked for"},
        **error_responses(400, 401, 404, 416, 429),
    },
)
async def get_media(
    content_id: ContentIdPath,
    user: MediaUser,
    ctx: Ctx,
    request: Request,
    range_header: Annotated[
        str | None,
        Header(
            alias="Range",
            description="One byte range: `bytes=0-99`, `bytes=100-` or `bytes=-100`",
        ),
    ] = None,
) -> Response:
    """The recording of a content of the caller's, to listen to: uploads, and fetched
    platform media while it is kept. Videos and formats browsers do not play come as
    audio (Opus in WebM), made on first request. Send the API key, or follow the signed
    ``media_url`` of a search hit or transcript (``?token=``; it expires after
    ``RAGCAST_MEDIA_LINK_TTL_S`` and dies with the key that asked for it). ``Range``
    gets ``206``; one past the end ``416``; a malformed one is ignored (``200``)."""
    opened = await run_in_threadpool(_open, ctx, user.user_id, content_id)
    headers = {
        "Accept-Ranges": "bytes",
        "ETag": opened.etag,
        "Last-Modified": formatdate(opened.mtime, usegmt=True),
        "Cache-Control": "private, max-age=300",
        "Content-Disposition": f'inline; filename="{quote(opened.filename, safe="")}"',
    }
    try:
        wanted = byte_range(range_header, opened.size)
    except Unsatisfiable:
        opened.close()
        size = opened.size
        return JSONResponse(
            error_body(
                "range_not_satisfiable",
                f"The range {range_header!r} is outside the recording's {size} bytes",
            ),
            status_code=416,
            headers={"Content-Range": f"bytes */{size}", "Accept-Ranges": "bytes"},
        )
    if wanted is None or not _range_applies(request, opened):
        start, length, status = 0, opened.size, 200
    else:
        start, length, status = wanted[0], wanted[1] - wanted[0] + 1, 206
        headers["Content-Range"] = f"bytes {wanted[0]}-{wanted[1]}/{opened.size}"
    headers["Content-Length"] = str(length)
    return StreamingResponse(
        _stream(opened, start, length),
        status_code=status,
        media_type=opened.content_type,
        headers=headers,
        background=BackgroundTask(opened.close),
    )


__all__ = ["byte_range", "media_links", "media_url", "router"]
