"""The ragcast exception hierarchy.

``RagcastError`` is the root. The API maps each kind to the contract's error body in
one place (``ragcast.api.errors``); pipeline stages raise :class:`ItemError` for a
problem with one content item (the item fails alone, with the message as its reason)
and :class:`TransientError` for a failure worth retrying (a provider outage).

- RagcastError
  - ValidationError        400 ``validation_error`` with ``details.field``/``details.issue``
  - AuthError              401 ``unauthorized``
  - ForbiddenError         403 ``forbidden``
  - NotFoundError          404 ``not_found``
  - ConflictError          409 ``conflict``
  - PayloadTooLargeError   413 ``payload_too_large``
  - RateLimitError         429 ``rate_limit_exceeded``
  - ItemError              one item failed; its message is the item's readable reason
    - MediaError           the media or document could not be read
  - TransientError         retry with backoff; ``retry_after`` seconds when the provider said
  - ConfigurationError     a backend is not installed or not configured
  - Interrupted            the process is stopping; the work resumes at the next start
"""

from __future__ import annotations

import re

#: an absolute file path (not the path of a URL, which follows a host name)
_PATH = re.compile(r"(?<![\w.:/~-])/(?:[^\s'\"/]+/)+([^\s'\"/,;)]*)")


class RagcastError(Exception):
    """Root of every error ragcast raises on purpose."""

    status_code = 500
    code = "processing_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ValidationError(RagcastError):
    """Bad input; ``field`` is the dotted path of the offending request field."""

    status_code = 400
    code = "validation_error"

    def __init__(self, field: str, issue: str, message: str | None = None) -> None:
        super().__init__(message or f"Invalid value for {field}: {issue}")
        self.field = field
        self.issue = issue


class AuthError(RagcastError):
    """Missing, unknown or revoked API key."""

    status_code = 401
    code = "unauthorized"


class ForbiddenError(RagcastError):
    """The key is valid but may not do this (for example a non-admin cleanup)."""

    status_code = 403
    code = "forbidden"


class NotFoundError(RagcastError):
    """No such object for this user (objects of other users look exactly the same)."""

    status_code = 404
    code = "not_found"


class ConflictError(RagcastError):
    """The request clashes with the state of an existing object."""

    status_code = 409
    code = "conflict"


class PayloadTooLargeError(RagcastError):
    """An upload over the configured size cap."""

    status_code = 413
    code = "payload_too_large"


class RateLimitError(RagcastError):
    """Too many requests; ``retry_after`` is in seconds."""

    status_code = 429
    code = "rate_limit_exceeded"

    def __init__(
        self, message: str, retry_after: int, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.headers = headers or {}


class UpstreamUnavailableError(RagcastError):
    """A platform or provider did not answer in time; the request may be repeated."""

    status_code = 503
    code = "upstream_unavailable"


class ItemError(RagcastError):
    """One content item cannot be processed; the job goes on without it."""


class MediaError(ItemError):
    """The media or document of an item is corrupt, empty or of an unsupported kind."""


class TransientError(RagcastError):
    """A failure that may pass (provider 429/5xx, connection error)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ConfigurationError(RagcastError):
    """A backend is not installed or lacks its settings."""


class Interrupted(RagcastError):
    """Work stopped because the process is shutting down; it is resumed, not failed."""


def redact_paths(text: str) -> str:
    """``text`` with every absolute server path cut to its last name (``…/clip.wav``)."""
    return _PATH.sub(lambda m: f"…/{m.group(1)}" if m.group(1) else "…/", text)


def internal_reason(exc: BaseException) -> str:
    """An unexpected failure as an item's readable reason, without server paths."""
    if isinstance(exc, OSError) and exc.strerror:
        detail = exc.strerror  # "No space left on device", not the file it was writing
    else:
        detail = redact_paths(str(exc))
    return f"internal error: {type(exc).__name__}: {detail}"[:500]
