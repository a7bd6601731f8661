"""Pure ASGI middleware: request ids and rate-limit headers on every response.

Pure ASGI (not ``BaseHTTPMiddleware``) so streamed downloads stay streamed.
"""

from __future__ import annotations

import json
import logging
import secrets
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

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
        incoming = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if 0 < len(incoming) <= 128 else f"req-{secrets.token_hex(8)}"
        state["request_id"] = request_id

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                extra = {"x-request-id": request_id, **state.get("rate_headers", {})}
                for key, value in extra.items():
                    if key.lower().encode() not in names:
                        headers.append((key.encode(), str(value).encode()))
                message["headers"] = headers
            await send(message)

        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send_with_headers(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            # Answer the contract's 500 body here, outermost, so it carries the request id
            # and never a stack trace; the error is logged with that id.
            log.exception("unhandled error (request %s)", request_id)
            if started:
                raise
            body = json.dumps(
                {
                    "success": False,
                    "error": "processing_error",
                    "message": "Internal server error",
                    "request_id": request_id,
                }
            ).encode()
            await send_with_headers(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send_with_headers({"type": "http.response.body", "body": body})
