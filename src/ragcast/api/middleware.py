"""Pure ASGI middleware: request ids, rate-limit and security headers on every response.

Pure ASGI (not ``BaseHTTPMiddleware``) so streamed downloads stay streamed.
"""

from __future__ import annotations

import json
import logging
import os
import re
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ragcast.api.schemas import ID_PATTERN

log = logging.getLogger(__name__)


class RequestContextMiddleware:
    """Adds ``X-Request-ID`` and the ``X-RateLimit-*`` headers a route recorded."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state: dict[str, Any] = scope.setdefault("state", {})
        incoming = _header(scope, b"x-request-id").decode("latin-1")
        request_id = incoming if 0 < len(incoming) <= 128 else f"req-{os.urandom(8).hex()}"
        state["request_id"] = request_id
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                extra = {
                    "x-request-id": request_id,
                    "x-content-type-options": "nosniff",
                    **state.get("rate_headers", {}),
                }
                for key, value in extra.items():
                    if key.lower().encode() not in names:
                        headers.append((key.encode(), str(value).encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            # Answer the contract's 500 body here, outermost, so it carries the request id
            # and never a stack trace; the error is logged with that id.
            log.exception("unhandled error (request %s)", request_id)
            if started:
                raise
            await _answer(
                send_with_headers,
                500,
                "processing_error",
                "Internal server error",
                request_id=request_id,
            )


def _header(scope: Scope, name: bytes) -> bytes:
    """The first value of header ``name`` (lower case), or b""."""
    for key, value in scope.get("headers") or ():
        if key == name:
            return bytes(value)
    return b""


class CachedStatusMiddleware:
    """Answers ``GET /job/{job_id}/status`` from memory when it can, before any routing.

    When the bearer key was checked a moment ago (:class:`~ragcast.auth.KeyCache`) and
    the job's status answer is kept (:class:`~ragcast.api.cache.StatusCache`), the
    request is counted against the user's read limit and answered with the kept JSON,
    exactly as the route would answer it. Anything else (an unknown or missing key, a
    status not kept, a request over the limit) goes on to the route, which reads the
    store and answers errors. A request is counted once either way: a refused count
    adds nothing to the window, and the route counts it again.
    """

    def __init__(self, app: ASGIApp, *, prefix: str) -> None:
        self.app = app
        pattern = ID_PATTERN.removeprefix("^").removesuffix("$")
        self._path = re.compile(rf"{re.escape(prefix)}/job/({pattern})/status")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            found = self._path.fullmatch(scope["path"])
            if found is not None and await self._answered(scope, send, found.group(1)):
                return
        await self.app(scope, receive, send)

    async def _answered(self, scope: Scope, send: Send, job_id: str) -> bool:
        """Answer from memory; False (having sent nothing) when the route must."""
        from ragcast.errors import RateLimitError

        scheme, _, key = _header(scope, b"authorization").decode("latin-1").partition(" ")
        if scheme.lower() != "bearer":
            return False
        state = scope["app"].state
        principal = state.keys.lookup(key.strip())
        if principal is None:
            return False
        body = state.statuses.get(principal.user_id, job_id)
        if body is None:
            return False
        try:
            counted = await state.limiter.ahit("read", principal.user_id, admin=principal.is_admin)
        except RateLimitError:
            return False  # nothing was counted: the route counts again and answers 429
        scope.setdefault("state", {})["rate_headers"] = counted.headers()
        headers = [
            (b"content-length", str(len(body)).encode()),
            (b"content-type", b"application/json"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return True


class BodyGuardMiddleware:
    """Authenticate before any body is read, and cap bodies while they stream in.

    For a request to the API that carries a body (POST, PUT, PATCH, DELETE):

    - the bearer key is checked first: a request without a valid key gets its ``401``
      before a single body byte is read (a 2 GB upload is refused at its headers);
    - a declared ``Content-Length`` over the route's limit gets a ``413`` at once;
    - a body that streams past the limit (chunked, or lying about its length) gets a
      ``413`` the moment it does; the application then sees a disconnect, and whatever
      it had spooled is dropped with it.

    The limit is ``RAGCAST_MAX_UPLOAD_BYTES`` (plus the multipart envelope) for
    ``POST /uploads`` and ``RAGCAST_MAX_JSON_BYTES`` (1 MB) for everything else. The
    principal found is kept in the request state, so the route does not look it up again.
    """

    ENVELOPE = 64 * 1024
    BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

    def __init__(self, app: ASGIApp, *, prefix: str) -> None:
        self.app = app
        self.prefix = prefix

    async def _authenticated(self, scope: Scope, headers: dict[bytes, bytes], send: Send) -> bool:
        """Check the bearer key (kept in the state); False after answering the 401."""
        from starlette.requests import Request

        from ragcast.api.deps import principal_of
        from ragcast.errors import AuthError

        scheme, _, key = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        try:
            principal = await principal_of(
                Request(scope), key.strip() if scheme.lower() == "bearer" else None
            )
        except AuthError as exc:
            await _answer(send, 401, "unauthorized", exc.message, {b"www-authenticate": b"Bearer"})
            return False
        scope.setdefault("state", {})["principal"] = principal
        return True

    def _limit(self, scope: Scope, settings: Any) -> tuple[int, str]:
        """The body limit of this route and how to name it."""
        if scope["method"] == "POST" and scope["path"] == f"{self.prefix}/uploads":
            limit = int(settings.max_upload_bytes)
            return limit + self.ENVELOPE, f"the upload limit of {limit} bytes"
        limit = int(settings.max_json_bytes)
        return limit, f"the request body limit of {limit} bytes"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in self.BODY_METHODS
            or not scope["path"].startswith(self.prefix)
        ):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        ctx = scope["app"].state.ctx
        if not await self._authenticated(scope, headers, send):
            return
        limit, what = self._limit(scope, ctx.settings)
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _answer(send, 413, "payload_too_large", f"The body is larger than {what}")
            return
        await self._capped(scope, receive, send, limit, what)

    async def _capped(
        self, scope: Scope, receive: Receive, send: Send, limit: int, what: str
    ) -> None:
        """Run the application, answering 413 the moment the body passes ``limit``."""
        seen = 0
        refused = False
        started = False

        async def counting_receive() -> Message:
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    refused = True
                    if not started:
                        await _answer(
                            send, 413, "payload_too_large", f"The body is larger than {what}"
                        )
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the 413 has been sent; the application's answer goes nowhere
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not refused:
                raise
            log.info("request body over the limit: %s %s", scope["method"], scope["path"])


async def _answer(
    send: Send,
    status: int,
    code: str,
    message: str,
    headers: dict[bytes, bytes] | None = None,
    **extra: Any,
) -> None:
    """Send the contract's error body straight from a middleware."""
    from ragcast.api.errors import error_body

    body = json.dumps(error_body(code, message, **extra)).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += list((headers or {}).items())
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


_TICKET = re.compile(r"(token=)[^&\s\"']+")


class RedactTickets(logging.Filter):
    """Replaces ``token=…`` (WebSocket tickets) in log records with ``token=[redacted]``.

    Attached to uvicorn's access and error loggers, which print each request's path with
    its query string.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and "token=" in record.msg:
            record.msg = _TICKET.sub(r"\1[redacted]", record.msg)
        if record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            record.args = tuple(
                _TICKET.sub(r"\1[redacted]", a) if isinstance(a, str) and "token=" in a else a
                for a in args
            )
        return True


def redact_tickets_in_logs() -> None:
    """Install :class:`RedactTickets` on uvicorn's loggers (once)."""
    for name in ("uvicorn.access", "uvicorn.error"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTickets) for f in logger.filters):
            logger.addFilter(RedactTickets())
