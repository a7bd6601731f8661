"""The SDK's exceptions: one class per kind of error body the server sends."""

from __future__ import annotations

from typing import Any

import httpx


class ApiError(Exception):
    """The server answered with an error; ``body`` is the contract's error body.

    ``status_code`` is 0 when no answer came at all (the server could not be reached).
    """

    def __init__(self, status_code: int, body: dict[str, Any]) -> None:
        self.status_code = status_code
        self.body = body
        self.code: str = str(body.get("error") or "http_error")
        self.message: str = str(body.get("message") or f"HTTP {status_code}")
        super().__init__(f"{status_code} {self.code}: {self.message}")

    @property
    def request_id(self) -> str | None:
        """The server's request id, to quote in a bug report."""
        value = self.body.get("request_id")
        return str(value) if value is not None else None


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
    """429: ``retry_after`` is how many seconds the server asked to wait."""

    def __init__(
        self, status_code: int, body: dict[str, Any], *, retry_after: float | None = None
    ) -> None:
        super().__init__(status_code, body)
        value = body.get("retry_after")
        value = retry_after if value is None else value
        self.retry_after: float | None = float(value) if value is not None else None


class ApiConnectionError(ApiError):
    """The server could not be reached (after the retries)."""


_ERRORS: dict[int, type[ApiError]] = {
    400: ValidationError,
    401: AuthError,
    403: AuthError,
    404: NotFoundError,
    409: ConflictError,
}


def error_class(status_code: int) -> type[ApiError]:
    """The exception class for an HTTP error status (429 aside: it needs ``retry_after``)."""
    return _ERRORS.get(status_code, ApiError)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:  # an HTTP date: rare enough to fall back to backoff
        return None


def error_from_response(response: httpx.Response) -> ApiError:
    """The :class:`ApiError` subclass for an error response (read before calling)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {"error": "http_error", "message": response.text[:500] or response.reason_phrase}
    if response.status_code == 429:
        return RateLimitError(429, body, retry_after=_retry_after(response))
    return error_class(response.status_code)(response.status_code, body)
