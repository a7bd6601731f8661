"""What :class:`Client` and :class:`AsyncClient` share: configuration, the request of each
endpoint, error mapping and the retry policy. The two differ only in how they send."""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import IO, Any, Literal
from urllib.parse import quote, unquote

import httpx

from ragcast import __version__
from ragcast.client.errors import ApiConnectionError, ApiError, error_from_parts

API_PREFIX = "/api/public/bulk"
TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})
ITEMS_PAGE = 100
"""Items per page of ``GET /job/{job_id}/items`` unless asked otherwise (the server's default)."""
ITEMS_PAGE_MAX = 1000
"""The most items the server puts on one page: what ``items`` and ``iter_items`` ask for."""
TextFormat = Literal["srt", "vtt", "txt"]
"""The text formats of an item's transcript; ``json`` is the fourth, answered as a dict."""
Progress = Callable[[int, int], None]
"""``on_progress(done, total)`` of uploads and downloads (``total`` 0 when unknown)."""
RETRYABLE_TRANSPORT_ERRORS = (httpx.NetworkError, httpx.TimeoutException, httpx.RemoteProtocolError)
IN_PROCESS_TRANSPORTS = (httpx.MockTransport, httpx.ASGITransport, httpx.WSGITransport)
"""Transports that answer without a server on the network: no WebSocket to follow there."""


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to wait before trying a request again.

    Transient failures (429, 408, 5xx, no connection) are retried up to ``max_retries``
    times, waiting ``backoff * 2**attempt`` seconds (1 s, 2 s, 4 s, as the contract's
    "Retry Logic"), at most ``max_backoff``. A ``Retry-After`` from the server is waited
    instead; one longer than ``max_retry_wait`` is not waited out: the error is raised at
    once, carrying ``retry_after``, so the caller decides.
    """

    max_retries: int = 3
    backoff: float = 1.0
    max_backoff: float = 30.0
    max_retry_wait: float = 60.0

    def delay(self, attempt: int, error: ApiError) -> float | None:
        """Seconds to wait before retry ``attempt + 1`` (0-based), or None to give up."""
        if attempt >= self.max_retries or not error.transient:
            return None
        if error.retry_after is not None:
            # Waiting less than the server asked would only earn another refusal.
            return error.retry_after if error.retry_after <= self.max_retry_wait else None
        return float(min(self.backoff * 2**attempt, self.max_backoff))


@dataclass(frozen=True)
class Call:
    """One API request, before it is sent: path relative to ``/api/public/bulk``."""

    method: str
    path: str
    params: dict[str, Any] = field(default_factory=dict)
    json: dict[str, Any] | None = None

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``httpx.Client.build_request``."""
        kw: dict[str, Any] = {}
        if self.params:
            kw["params"] = self.params
        if self.json is not None:
            kw["json"] = self.json
        return kw


def _seg(value: str) -> str:
    return quote(value, safe="")


def filename_from(headers: Mapping[str, str], fallback: str) -> str:
    """The file name of a ``Content-Disposition``, reduced to a safe last component."""
    disposition = headers.get("content-disposition", "")
    match = re.search(r"filename\*=(?:utf-8'')?([^;]+)|filename=\"?([^\";]+)", disposition, re.I)
    # Only the last part of a server-given name: it must not lead out of the folder.
    name = Path(unquote(match.group(1) or match.group(2)).strip()).name if match else ""
    return name if name not in ("", ".", "..") else fallback


class CountingReader:
    """A binary file whose reads report progress; httpx streams it block by block."""

    def __init__(self, file: IO[bytes], total: int, on_progress: Progress | None) -> None:
        self._file, self._total, self._on_progress, self._done = file, total, on_progress, 0

    def read(self, size: int = -1) -> bytes:
        """Read a block and report the running total."""
        block = self._file.read(size)
        self._done += len(block)
        if self._on_progress is not None and block:
            self._on_progress(self._done, self._total)
        return block

    def seek(self, offset: int, whence: int = 0) -> int:
        """Rewind (httpx does before each sent request): the count starts over with it."""
        position = self._file.seek(offset, whence)
        self._done = position
        return position

    def tell(self) -> int:
        """The position in the file."""
        return self._file.tell()

    def fileno(self) -> int:
        """The underlying descriptor (httpx uses it for the length)."""
        return self._file.fileno()


class BaseClient:
    """Configuration and request building shared by the sync and async clients."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 60.0,
        max_retries: int = 3,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
        max_retry_wait: float = 60.0,
    ) -> None:
        if not re.match(r"https?://", base_url):
            raise ValueError(f"base_url must start with http:// or https://, not {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        self.retry = RetryPolicy(max_retries, backoff, max_backoff, max_retry_wait)
        # ``wait`` follows the job's socket unless the transport answers in-process.
        self._follows_socket = True

    @property
    def max_retries(self) -> int:
        """How many times a transient failure is retried."""
        return self.retry.max_retries

    def _http_options(self) -> dict[str, Any]:
        return {
            "base_url": self.base_url + API_PREFIX,
            "headers": {
                "Authorization": f"Bearer {self.api_key}",
                "User-Agent": f"ragcast-client/{__version__}",
            },
            "timeout": self.timeout,
        }

    @staticmethod
    def _transport_error(exc: httpx.TransportError, base_url: str) -> tuple[ApiError, bool]:
        """The error for a failed send, and whether it is worth retrying."""
        message = f"cannot reach {base_url}: {exc}"
        error = ApiConnectionError(0, {"error": "connection_error", "message": message})
        return error, isinstance(exc, RETRYABLE_TRANSPORT_ERRORS)

    @staticmethod
    def _object(data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise ApiError(200, {"error": "bad_response", "message": "expected a JSON object"})
        return data

    # -- the request of each endpoint --------------------------------------------------

    @staticmethod
    def _process(config: Mapping[str, Any]) -> Call:
        # The job id is fixed before the first try, so a retry is the same request.
        body = {"job_id": f"bulk-{time.time_ns() // 1_000_000}", **config}
        return Call("POST", "/process", json=body)

    @staticmethod
    def _status(job_id: str) -> Call:
        return Call("GET", f"/job/{_seg(job_id)}/status")

    @staticmethod
    def _items(
        job_id: str,
        limit: int = ITEMS_PAGE,
        after: int | None = None,
        offset: int | None = None,
        status: str | None = None,
    ) -> Call:
        params: dict[str, Any] = {"limit": limit}
        for name, value in (("after", after), ("offset", offset), ("status", status)):
            if value is not None:
                params[name] = value
        return Call("GET", f"/job/{_seg(job_id)}/items", params=params)

    @staticmethod
    def _all_items(job_id: str, total: int, items: list[dict[str, Any]]) -> dict[str, Any]:
        """The answer of ``items``: every item gathered, in the page's shape."""
        return {"job_id": job_id, "items": items, "total": total}

    @staticmethod
    def _transcript(job_id: str, index: int, fmt: str) -> Call:
        # The format is the server's to check: an unknown one is its 400, as for any field.
        path = f"/job/{_seg(job_id)}/items/{_seg(str(index))}/transcript"
        return Call("GET", path, params={"format": fmt})

    def _transcript_body(self, response: httpx.Response, fmt: str) -> dict[str, Any] | str:
        """The JSON object of ``format=json``; the text of ``srt``, ``vtt`` and ``txt``."""
        return self._object(response.json()) if fmt == "json" else response.text

    @staticmethod
    def _name_speakers(job_id: str, index: int, names: Mapping[str, str | None]) -> Call:
        path = f"/job/{_seg(job_id)}/items/{_seg(str(index))}/speakers"
        return Call("PATCH", path, json=dict(names))

    @staticmethod
    def _speakers() -> Call:
        return Call("GET", "/speakers")

    @staticmethod
    def _forget_speaker(name: str) -> Call:
        return Call("DELETE", f"/speakers/{_seg(name)}")

    @staticmethod
    def _cancel(job_id: str) -> Call:
        return Call("POST", f"/job/{_seg(job_id)}/cancel")

    @staticmethod
    def _delete_job(job_id: str) -> Call:
        return Call("DELETE", f"/job/{_seg(job_id)}")

    @staticmethod
    def _delete_upload(document_id: str) -> Call:
        return Call("DELETE", f"/uploads/{_seg(document_id)}")

    @staticmethod
    def _ticket(job_id: str) -> Call:
        return Call("GET", f"/job/{_seg(job_id)}/ticket")

    @staticmethod
    def _jobs(limit: int, offset: int, status: str | None) -> Call:
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if status is not None:
            params["status"] = status
        return Call("GET", "/jobs", params=params)

    @staticmethod
    def _preview(url: str, page: int, page_size: int) -> Call:
        return Call("GET", "/preview", params={"url": url, "page": page, "page_size": page_size})

    @staticmethod
    def _export(job_id: str, fmt: str, export_id: str | None) -> Call:
        body = {
            "job_id": job_id,
            "format": fmt,
            "export_id": export_id or f"export-{secrets.token_hex(8)}",
        }
        return Call("POST", "/export", json=body)

    @staticmethod
    def _export_status(export_id: str) -> Call:
        return Call("GET", f"/export/{_seg(export_id)}/status")

    @staticmethod
    def _download(export_id: str) -> Call:
        return Call("GET", f"/download/{_seg(export_id)}")

    @staticmethod
    def _search(query: str, job_id: str | None, top_k: int, **options: Any) -> Call:
        """``POST /search``; options left as None are not sent (the server's defaults)."""
        body: dict[str, Any] = {"query": query, "top_k": top_k}
        if job_id is not None:
            body["job_id"] = job_id
        for key, value in options.items():
            if isinstance(value, date):
                value = value.isoformat()
            if value is not None:
                body[key] = value
        return Call("POST", "/search", json=body)

    @staticmethod
    def _ask(query: str, stream: bool, **options: Any) -> Call:
        """``POST /ask``; options left as None are not sent (the server's defaults)."""
        body: dict[str, Any] = {"query": query}
        for key, value in options.items():
            if isinstance(value, date):
                value = value.isoformat()
            if value is not None:
                body[key] = value
        if stream:
            body["stream"] = True
        return Call("POST", "/ask", json=body)

    @staticmethod
    def _cleanup(older_than_hours: float | None) -> Call:
        params = {} if older_than_hours is None else {"older_than_hours": older_than_hours}
        return Call("DELETE", "/cleanup", params=params)

    # -- the WebSocket -----------------------------------------------------------------

    def _socket_target(
        self, job_id: str, websocket_url: str | None
    ) -> tuple[str, dict[str, str] | None]:
        """URL and headers of a job's socket: the ticketed URL, or the API key."""
        if websocket_url is not None:
            return websocket_url, None
        base = re.sub(r"^http", "ws", self.base_url, count=1)
        url = f"{base}{API_PREFIX}/ws/bulk-processing/{_seg(job_id)}"
        return url, {"Authorization": f"Bearer {self.api_key}"}

    @staticmethod
    def _socket_refused(job_id: str, exc: Exception) -> ApiError:
        """The error for a refused handshake, with the server's error body when it sent one."""
        response = getattr(exc, "response", None)
        code = int(getattr(response, "status_code", 0) or 0)
        if response is None or not code:
            message = f"WebSocket of job {job_id!r} failed: {exc}"
            return ApiConnectionError(0, {"error": "connection_error", "message": message})
        return error_from_parts(code, bytes(response.body or b""), response.headers)

    @staticmethod
    def _left(deadline: float | None) -> float | None:
        """Seconds until ``deadline`` (a ``time.monotonic()``; None: no deadline).

        ``TimeoutError`` once it has passed.
        """
        if deadline is None:
            return None
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the deadline has passed")
        return left

    def _open_timeout(self, deadline: float | None) -> float:
        """How long a socket may take to open: the client's timeout, at most until ``deadline``."""
        left = self._left(deadline)
        return self.timeout if left is None else min(self.timeout, left)

    @staticmethod
    def _overdue(deadline: float | None, poll_s: float) -> bool:
        """Whether one more poll would end after ``deadline``."""
        return deadline is not None and time.monotonic() + poll_s > deadline

    @staticmethod
    def _still(job_id: str, status: Mapping[str, Any], timeout: float | None) -> TimeoutError:
        """The error of a ``wait`` whose timeout passed before the job's end."""
        return TimeoutError(f"job {job_id!r} still {status['status']} after {timeout}s")

    @staticmethod
    def _socket_broken(exc: Exception) -> ApiError:
        message = f"WebSocket broke: {exc}"
        return ApiConnectionError(0, {"error": "connection_error", "message": message})


class SseReader:
    """Reads server-sent events line by line: ``{"event": name, "data": decoded JSON}``."""

    def __init__(self) -> None:
        self._event = "message"
        self._data: list[str] = []

    def feed(self, line: str) -> dict[str, Any] | None:
        """The event a blank line ends, else None (the line is kept)."""
        if line:
            if line.startswith("event:"):
                self._event = line[6:].strip()
            elif line.startswith("data:"):
                self._data.append(line[5:].removeprefix(" "))
            return None
        if not self._data:
            return None
        event = {"event": self._event, "data": json.loads("\n".join(self._data))}
        self._event, self._data = "message", []
        return event
