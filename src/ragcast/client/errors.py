"""The SDK's exceptions: one class per kind of error body the server sends."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx

from ragcast.retry_after import parse_retry_after


class ApiError(Exception):
    """The server answered with an error; ``body`` is the contract's error body.

    ``status_code`` is 0 when no answer came at all (the server could not be reached).
    ``retry_after`` is the wait in seconds the server asked for (``Retry-After``), if any.
    """

    def __init__(
        self, status_code: int, body: dict[str, Any], *, retry_after: float | None = None
    ) -> None:
        self.status_code = status_code
        self.body = body
        self.code: str = str(body.get("error") or "http_error")
        self.message: str = str(body.get("message") or f"HTTP {status_code}")
        self.retry_after: float | None = retry_after
        super().__init__(f"{status_code} {self.code}: {self.message}")

    @property
    def request_id(self) -> str | None:
        """The server's request id, to quote in a bug report."""
        value = self.body.get("request_id")
        return str(value) if value is not None else None

    @property
    def transient(self) -> bool:
        """Whether trying again later may succeed (429, 5xx, no answer)."""
        return self.status_code in (0, 408, 429) or self.status_code >= 500


class ValidationError(ApiError):
    """400: ``details`` names the offending field and the issue."""

    @property
    def details(self) -> dict[str, Any] | None:
        """``{"field": ..., "issue": ...}`` when the server said which field."""
        details = self.body.get("details")
        return details if isinstance(details, dict) else None


class AuthError(ApiError):
    """401/403: a missing, unknown or revoked key, or one that may not do this."""


class NotFoundError(ApiError):
    """404: no such job or export for this key's user."""


class ConflictError(ApiError):
    """409: the request clashes with an object's state (job not finished, id reused)."""


class RateLimitError(ApiError):
    """429: ``retry_after`` is how many seconds the server asked to wait.

    ``bucket`` (``process``, ``export``, ``read``...), ``limit`` (requests per window),
    ``window_s`` and ``setting`` (the server's variable that raises the limit, e.g.
    ``RAGCAST_RATE_LIMIT_EXPORT``) say which limit refused; None when the server did not.
    """

    def __init__(
        self, status_code: int, body: dict[str, Any], *, retry_after: float | None = None
    ) -> None:
        value = body.get("retry_after")
        try:
            retry_after = float(value) if value is not None else retry_after
        except (TypeError, ValueError):
            pass
        super().__init__(status_code, body, retry_after=retry_after)
        details = body.get("details")
        details = details if isinstance(details, dict) else {}
        self.bucket: str | None = _text(details.get("bucket"))
        self.setting: str | None = _text(details.get("setting"))
        self.limit: int | None = _number(details.get("limit"))
        self.window_s: int | None = _number(details.get("window_s"))


def _text(value: Any) -> str | None:
    return str(value) if value is not None else None


def _number(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


class ApiConnectionError(ApiError):
    """The server could not be reached (after the retries)."""


_ERRORS: dict[int, type[ApiError]] = {
    400: ValidationError,
    401: AuthError,
    403: AuthError,
    404: NotFoundError,
    409: ConflictError,
    429: RateLimitError,
}


def error_class(status_code: int) -> type[ApiError]:
    """The exception class for an HTTP error status."""
    return _ERRORS.get(status_code, ApiError)


def error_from_parts(
    status_code: int, content: bytes, headers: Mapping[str, str], reason: str = ""
) -> ApiError:
    """The :class:`ApiError` subclass for an error answer's status, body and headers."""
    try:
        body = json.loads(content) if content else None
    except ValueError:
        body = None
    if not isinstance(body, dict):
        text = content.decode("utf-8", "replace").strip()[:500]
        body = {"error": "http_error", "message": text or reason or f"HTTP {status_code}"}
    retry_after = parse_retry_after(headers.get("retry-after"))
    return error_class(status_code)(status_code, body, retry_after=retry_after)


def error_from_response(response: httpx.Response) -> ApiError:
    """The :class:`ApiError` subclass for an error response (read before calling)."""
    return error_from_parts(
        response.status_code, response.content, response.headers, response.reason_phrase
    )
