"""The one place where errors become the contract's error bodies."""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ragcast.api.deps import forgive_invalid
from ragcast.api.ratelimit import RateLimitExceeded
from ragcast.errors import (
    RagcastError,
    RateLimitError,
    UpstreamUnavailableError,
    ValidationError,
    redact_paths,
)

log = logging.getLogger(__name__)


#: longest text an error body carries in one field: messages quote what the client sent,
#: and a 100 KB field must not come back (twice) in the answer
MAX_ERROR_TEXT = 300


def cap(text: str, limit: int = MAX_ERROR_TEXT) -> str:
    """``text`` cut to ``limit`` characters, marked with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """``{"success": false, "error", "message", ...}``; echoed text capped at 300 characters."""
    details = extra.get("details")
    if isinstance(details, dict):
        extra["details"] = {
            k: v if isinstance(v, int | float) and not isinstance(v, bool) else cap(str(v))
            for k, v in details.items()
        }
    return {"success": False, "error": code, "message": cap(message), **extra}


#: where FastAPI found a parameter: the first entry of a validation error's ``loc``
_SOURCES = frozenset({"body", "query", "path", "header", "cookie"})


def _field(loc: tuple[Any, ...]) -> str:
    """The field a validation error's ``loc`` names, as the contract writes it.

    Only the leading source (``body``, ``query``...) is dropped: a body field may itself
    be called ``query``. List positions read ``pasted_urls[0]``, as the handlers' own
    ``ValidationError`` names them; the whole body (or an empty ``loc``) is ``body``.
    """
    parts = list(loc[1:] if loc and loc[0] in _SOURCES else loc)
    field = ""
    for part in parts:
        if isinstance(part, int):
            field += f"[{part}]"
        else:
            field += f".{part}" if field else str(part)
    return field or "body"


async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    await forgive_invalid(request)
    first = exc.errors()[0] if exc.errors() else {"loc": ("body",), "msg": "invalid request"}
    field = _field(tuple(first.get("loc", ())))
    issue = str(first.get("msg", "invalid value"))
    if first.get("type") == "json_invalid":
        field, issue = "body", "Request body is not valid JSON"
    elif first.get("type") == "missing":
        issue = "Field required"
    return JSONResponse(
        error_body(
            "validation_error",
            f"Invalid request: {field}: {issue}",
            details={"field": field, "issue": issue},
        ),
        status_code=400,
    )


def rate_limited(exc: RateLimitError) -> JSONResponse:
    """The contract's ``429``: ``retry_after``, ``Retry-After`` and the ``X-RateLimit-*``
    headers of the bucket that refused (also sent by ``/mcp``, outside the routes), and
    ``details`` naming the bucket, its limit and the setting that raises it."""
    extra: dict[str, Any] = {}
    if isinstance(exc, RateLimitExceeded):
        extra["details"] = exc.details
    return JSONResponse(
        error_body(exc.code, exc.message, retry_after=exc.retry_after, **extra),
        status_code=exc.status_code,
        headers={**exc.headers, "Retry-After": str(exc.retry_after)},
    )


async def _ragcast(request: Request, exc: RagcastError) -> JSONResponse:
    headers: dict[str, str] = {}
    extra: dict[str, Any] = {}
    if isinstance(exc, ValidationError):
        await forgive_invalid(request)
        extra["details"] = {"field": exc.field, "issue": exc.issue}
    if isinstance(exc, RateLimitError):
        return rate_limited(exc)
    if isinstance(exc, UpstreamUnavailableError):  # a provider's outage, said as such
        log.warning("upstream unavailable: %s", exc.message)
        return JSONResponse(
            error_body(exc.code, redact_paths(exc.message)), status_code=exc.status_code
        )
    if exc.status_code >= 500:
        log.error("request failed: %s", exc.message)
        return _server_error(request)
    if exc.status_code == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(
        error_body(exc.code, exc.message, **extra), status_code=exc.status_code, headers=headers
    )


async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    codes = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized"}
    headers = dict(getattr(exc, "headers", None) or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed(request) or headers.get("Allow", "")
    return JSONResponse(
        error_body(codes.get(exc.status_code, "http_error"), str(exc.detail)),
        status_code=exc.status_code,
        headers=headers,
    )


def _allowed(request: Request) -> str:
    """Every method the API documents for the request's path (Starlette names only the
    first route's when several share a path: ``GET`` and ``POST /webhooks``)."""
    path = request.url.path
    for template, item in request.app.openapi().get("paths", {}).items():
        pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, path):
            return ", ".join(sorted(m.upper() for m in item if m in _METHODS))
    return ""


_METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options", "trace"})


def _server_error(request: Request) -> JSONResponse:
    request_id = request.scope.get("state", {}).get("request_id", "req-unknown")
    return JSONResponse(
        error_body("processing_error", "Internal server error", request_id=request_id),
        status_code=500,
    )


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(RequestValidationError, _validation)  # type: ignore[arg-type]
    app.add_exception_handler(RagcastError, _ragcast)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http)  # type: ignore[arg-type]
