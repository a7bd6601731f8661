"""Pure ASGI middleware: request ids and rate-limit headers on every response.

Pure ASGI (not ``BaseHTTPMiddleware``) so streamed downloads stay streamed.
"""

from __future__ import annotations

import secrets
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send


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

        await self.app(scope, receive, send_with_headers)
