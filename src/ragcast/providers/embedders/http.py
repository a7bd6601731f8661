"""A small retrying JSON-over-HTTP helper shared by the cloud embedders (Jina, Gemini).

Rules, the same for every provider:

- 429, 408, 5xx and connection errors are retried, at most ``attempts`` tries in all,
  waiting ``Retry-After`` (seconds or an HTTP date) when the provider sent one, else an
  exponential backoff from ``backoff_s`` capped at ``max_backoff_s``;
- a ``Retry-After`` longer than ``max_backoff_s`` is not slept through in a worker
  thread: :class:`~ragcast.errors.TransientError` is raised at once with that delay, and
  the runner's own retries take over;
- after the last try the failure is a :class:`~ragcast.errors.TransientError` too;
- any other 4xx cannot be fixed by retrying: :class:`~ragcast.errors.ItemError` with the
  provider's own message (``detail``, ``error.message`` or ``message`` of its JSON body).
"""

from __future__ import annotations

import logging
import random
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
import numpy as np
import numpy.typing as npt

from ragcast.errors import ItemError, TransientError
from ragcast.retry_after import parse_retry_after as retry_after_seconds

if TYPE_CHECKING:
    from ragcast.settings import Settings

log = logging.getLogger(__name__)

RETRYABLE = frozenset({408, 429})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to retry a provider call."""

    attempts: int = 4
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed try ``attempt`` (0-based) without ``Retry-After``.

        Jitter (50–100 %) keeps the workers of several processes from retrying in step.
        """
        base = min(self.max_backoff_s, self.backoff_s * 2.0**attempt)
        return float(base * (0.5 + random.random() / 2))


@dataclass(frozen=True, slots=True)
class HttpConfig:
    """Where a provider lives and how to talk to it."""

    base_url: str
    api_key: str
    timeout_s: float = 120.0
    retry: RetryPolicy = RetryPolicy()


def provider_message(response: httpx.Response) -> str:
    """The provider's own error message from its JSON body, else the start of the text."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500] or response.reason_phrase
    return _message(body) or response.text.strip()[:500]


def _message(body: Any) -> str | None:
    if not isinstance(body, Mapping):
        return None
    detail = body.get("detail")
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list) and detail:  # FastAPI-style validation errors
        return "; ".join(str(d.get("msg", d)) if isinstance(d, Mapping) else str(d) for d in detail)
    error = body.get("error")
    if isinstance(error, Mapping) and isinstance(error.get("message"), str):
        return str(error["message"])
    if isinstance(error, str):
        return error
    message = body.get("message")
    return message if isinstance(message, str) else None


class JsonClient:
    """POSTs JSON to one provider with the retry rules above (sync, thread-safe)."""

    def __init__(
        self,
        provider: str,
        config: HttpConfig,
        headers: Mapping[str, str],
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.provider = provider
        self.policy = config.retry
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=config.base_url.rstrip("/"),
            headers=dict(headers),
            timeout=config.timeout_s,
            transport=transport,
        )

    def post(self, path: str, body: Mapping[str, Any]) -> Any:
        """POST ``body`` to ``path``; the decoded JSON answer of a 2xx response."""
        attempts = max(1, self.policy.attempts)
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                response = self._http.post(path, json=body)
            except httpx.TransportError as exc:
                reason = f"{self.provider} is unreachable: {type(exc).__name__}: {exc}"
                self._wait_or_raise(reason, None, attempt, last)
                continue
            if response.is_success:
                try:
                    return response.json()
                except ValueError as exc:
                    raise TransientError(f"{self.provider} sent invalid JSON: {exc}") from exc
            status = response.status_code
            message = provider_message(response)
            if status in RETRYABLE or status >= 500:
                reason = f"{self.provider} answered HTTP {status}: {message}"
                delay = retry_after_seconds(response.headers.get("Retry-After"))
                self._wait_or_raise(reason, delay, attempt, last)
                continue
            raise ItemError(f"{self.provider} refused the request (HTTP {status}): {message}")
        raise AssertionError("unreachable")  # pragma: no cover - the loop raises or returns

    def _wait_or_raise(self, reason: str, delay: float | None, attempt: int, last: bool) -> None:
        if last:
            raise TransientError(f"{reason} (after {attempt + 1} attempts)", retry_after=delay)
        if delay is not None and delay > self.policy.max_backoff_s:
            # Too long to hold a worker thread: let the runner retry the item later.
            raise TransientError(f"{reason} (retry after {delay:.0f}s)", retry_after=delay)
        wait = delay if delay is not None else self.policy.backoff(attempt)
        log.warning("%s; retrying in %.2fs", reason, wait)
        self._sleep(wait)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()


def http_config(base_url: str, api_key: str, settings: Settings) -> HttpConfig:
    """An :class:`HttpConfig` with the server's retry and timeout settings."""
    return HttpConfig(
        base_url=base_url,
        api_key=api_key,
        timeout_s=settings.provider_timeout_s,
        retry=RetryPolicy(
            attempts=settings.provider_max_attempts,
            backoff_s=settings.provider_backoff_s,
            max_backoff_s=settings.provider_max_backoff_s,
        ),
    )


def unit_rows(vectors: Any) -> npt.NDArray[np.float32]:
    """Rows scaled to unit length (zero rows stay zero), as float32."""
    arr = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(arr, axis=-1, keepdims=True)
    out: npt.NDArray[np.float32] = (arr / np.maximum(norms, 1e-12)).astype(np.float32)
    return out


_REACHED: dict[str, float] = {}
#: how long a successful reachability check is trusted
REACHABLE_FOR_S = 300.0


def check_reachable(base_url: str, *, timeout_s: float = 5.0) -> str | None:
    """None when ``base_url``'s host accepts a connection, else why it cannot be reached.

    A job naming a cloud embedder is refused at submission when its base URL is down or
    wrong (no such host, nothing listening), rather than accepted and then failing every
    item. The check is a TCP connection, not a request: it costs the provider nothing and
    spends no quota. A success is remembered for five minutes.
    """
    now = time.monotonic()
    if now - _REACHED.get(base_url, -REACHABLE_FOR_S) < REACHABLE_FOR_S:
        return None
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "not an http(s) URL"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout_s):
            pass
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"[:200]
    _REACHED[base_url] = now
    return None
