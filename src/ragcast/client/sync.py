"""The synchronous SDK: one method per endpoint of the Bulk Processing API."""

from __future__ import annotations

import json
import mimetypes
import re
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote, unquote

import httpx

from ragcast import __version__
from ragcast.client.errors import (
    ApiConnectionError,
    ApiError,
    RateLimitError,
    error_class,
    error_from_response,
)

API_PREFIX = "/api/public/bulk"
TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})
TERMINAL_MESSAGES = frozenset({"completed", "error"})
Progress = Callable[[int, int], None]
RETRYABLE_TRANSPORT_ERRORS = (httpx.NetworkError, httpx.TimeoutException, httpx.RemoteProtocolError)


def _filename(response: httpx.Response, fallback: str) -> str:
    disposition = response.headers.get("content-disposition", "")
    match = re.search(r"filename\*=(?:utf-8'')?([^;]+)|filename=\"?([^\";]+)", disposition, re.I)
    # Only the last part of a server-given name: it must not lead out of the folder.
    name = Path(unquote(match.group(1) or match.group(2)).strip()).name if match else ""
    return name if name not in ("", ".", "..") else fallback


class _CountingReader:
    """A binary file whose reads report progress; httpx streams it block by block."""

    def __init__(self, file: IO[bytes], total: int, on_progress: Progress | None) -> None:
        self._file, self._total, self._on_progress, self._done = file, total, on_progress, 0

    def read(self, size: int = -1) -> bytes:
        block = self._file.read(size)
        self._done += len(block)
        if self._on_progress is not None and block:
            self._on_progress(self._done, self._total)
        return block

    def seek(self, offset: int, whence: int = 0) -> int:
        # httpx rewinds before each (re)sent request: the count starts over with it.
        position = self._file.seek(offset, whence)
        self._done = position
        return position

    def tell(self) -> int:
        return self._file.tell()

    def fileno(self) -> int:
        return self._file.fileno()


class Client:
    """A client of one ragcast server, authenticated by one API key.

    429 answers (waiting ``Retry-After`` when it is at most ``max_retry_wait`` seconds),
    5xx answers and connection errors are retried up to ``max_retries`` times with
    exponential backoff (1 s, 2 s, 4 s). Every call is safe to repeat: ``POST /process``
    is idempotent by ``job_id`` and exports get their ``export_id`` before the first try.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 60.0,
        max_retries: int = 3,
        backoff: float = 1.0,
        max_retry_wait: float = 60.0,
    ) -> None:
        if not re.match(r"https?://", base_url):
            raise ValueError(f"base_url must start with http:// or https://, not {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_retry_wait = max_retry_wait
        self._http = httpx.Client(
            base_url=self.base_url + API_PREFIX,
            headers={
                "Authorization": f"Bearer {api_key}",
                "User-Agent": f"ragcast-client/{__version__}",
            },
            transport=transport,
            timeout=timeout,
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    # -- transport ---------------------------------------------------------------------

    def _delay(self, attempt: int, error: ApiError) -> float | None:
        """Seconds to wait before retry ``attempt + 1``, or None to give up."""
        transient = (
            isinstance(error, ApiConnectionError | RateLimitError) or error.status_code >= 500
        )
        if attempt >= self.max_retries or not transient:
            return None
        if isinstance(error, RateLimitError) and error.retry_after is not None:
            # Waiting less than the server asked would only earn another 429.
            return error.retry_after if error.retry_after <= self.max_retry_wait else None
        return float(self.backoff * 2**attempt)

    def _send(self, method: str, path: str, *, stream: bool = False, **kw: Any) -> httpx.Response:
        """Send with retries; the response is successful (and open when ``stream``)."""
        attempt = 0
        while True:
            cause: Exception | None = None
            try:
                request = self._http.build_request(method, path, **kw)
                response = self._http.send(request, stream=stream)
            except httpx.TransportError as exc:
                cause = exc
                message = f"cannot reach {self.base_url}: {exc}"
                error: ApiError = ApiConnectionError(
                    0, {"error": "connection_error", "message": message}
                )
                if not isinstance(exc, RETRYABLE_TRANSPORT_ERRORS):  # a bad URL or proxy
                    raise error from exc
            else:
                if response.is_success:
                    return response
                response.read()
                response.close()
                error = error_from_response(response)
            delay = self._delay(attempt, error)
            if delay is None:
                raise error from cause
            time.sleep(delay)
            attempt += 1

    def _json(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        data = self._send(method, path, **kw).json()
        if not isinstance(data, dict):
            raise ApiError(200, {"error": "bad_response", "message": "expected a JSON object"})
        return data

    # -- jobs --------------------------------------------------------------------------

    def process(self, config: dict[str, Any]) -> dict[str, Any]:
        """Start a job (``POST /process``); a ``job_id`` is made up when absent."""
        body = {"job_id": f"bulk-{time.time_ns() // 1_000_000}", **config}
        return self._json("POST", "/process", json=body)

    def status(self, job_id: str) -> dict[str, Any]:
        """Status and progress of a job."""
        return self._json("GET", f"/job/{quote(job_id, safe='')}/status")

    def items(self, job_id: str) -> dict[str, Any]:
        """The items of a job, each with its stage, transcript source and error."""
        return self._json("GET", f"/job/{quote(job_id, safe='')}/items")

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Cancel a job."""
        return self._json("POST", f"/job/{quote(job_id, safe='')}/cancel")

    def jobs(self, limit: int = 50, offset: int = 0, status: str | None = None) -> dict[str, Any]:
        """One page of this user's jobs, newest first."""
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if status is not None:
            params["status"] = status
        return self._json("GET", "/jobs", params=params)

    def wait(
        self, job_id: str, poll_s: float = 4.0, timeout: float | None = None
    ) -> dict[str, Any]:
        """Poll a job's status until it is completed, failed or cancelled."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            status = self.status(job_id)
            if status["status"] in TERMINAL_STATUSES:
                return status
            if deadline is not None and time.monotonic() + poll_s > deadline:
                raise TimeoutError(f"job {job_id!r} still {status['status']} after {timeout}s")
            time.sleep(poll_s)

    def monitor(self, job_id: str, websocket_url: str | None = None) -> Iterator[dict[str, Any]]:
        """Follow a job over its WebSocket: every message, up to the terminal one.

        ``websocket_url`` is the ticketed URL ``process`` answered with; without it the
        socket is opened with this client's API key.
        """
        from websockets.exceptions import (
            ConnectionClosed,
            ConnectionClosedOK,
            InvalidHandshake,
            InvalidStatus,
        )
        from websockets.sync.client import connect

        headers: dict[str, str] | None = None
        url = websocket_url
        if url is None:
            base = re.sub(r"^http", "ws", self.base_url, count=1)
            url = f"{base}{API_PREFIX}/ws/bulk-processing/{quote(job_id, safe='')}"
            headers = {"Authorization": f"Bearer {self.api_key}"}
        try:
            socket = connect(url, additional_headers=headers, open_timeout=self.timeout)
        except InvalidStatus as exc:
            # Refused before the handshake completed: the status is all the server says.
            code = exc.response.status_code
            message = f"WebSocket refused ({code}): unknown job {job_id!r} or a bad key/ticket"
            raise error_class(code)(code, {"error": "ws_refused", "message": message}) from exc
        except (InvalidHandshake, OSError) as exc:
            message = f"WebSocket to {url.split('?')[0]} failed: {exc}"
            raise ApiConnectionError(0, {"error": "connection_error", "message": message}) from exc
        with socket:
            while True:
                try:
                    message = json.loads(socket.recv())
                except ConnectionClosedOK:
                    return
                except ConnectionClosed as exc:
                    raise ApiConnectionError(
                        0, {"error": "connection_error", "message": f"WebSocket broke: {exc}"}
                    ) from exc
                yield message
                if message.get("type") in TERMINAL_MESSAGES:
                    return

    # -- files, exports, search --------------------------------------------------------

    def upload(self, path: Path, on_progress: Progress | None = None) -> dict[str, Any]:
        """Upload a recording or document (streamed); returns its ``document_id``."""
        path = Path(path)
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        with path.open("rb") as file:
            reader = _CountingReader(file, path.stat().st_size, on_progress)
            return self._json("POST", "/uploads", files={"file": (path.name, reader, content_type)})

    def export(self, job_id: str, fmt: str, export_id: str | None = None) -> dict[str, Any]:
        """Start an export of a finished job in ``fmt`` (json, csv, parquet, vector)."""
        body = {
            "job_id": job_id,
            "format": fmt,
            "export_id": export_id or f"export-{secrets.token_hex(8)}",
        }
        return self._json("POST", "/export", json=body)

    def export_status(self, export_id: str) -> dict[str, Any]:
        """Status of an export; ``download_url`` once it is completed."""
        return self._json("GET", f"/export/{quote(export_id, safe='')}/status")

    def download(self, export_id: str, dest: Path, on_progress: Progress | None = None) -> Path:
        """Stream an export's file to ``dest`` (a file, or a folder for the server's name).

        The file appears complete or not at all: it is written beside ``dest`` first.
        ``on_progress(received, total)`` gets ``total`` 0 when the size is unknown.
        """
        dest = Path(dest)
        response = self._send("GET", f"/download/{quote(export_id, safe='')}", stream=True)
        try:
            target = dest / _filename(response, export_id) if dest.is_dir() else dest
            part = target.with_name(target.name + ".part")
            total = int(response.headers.get("content-length") or 0)
            received = 0
            try:
                with part.open("wb") as out:
                    for block in response.iter_bytes():
                        out.write(block)
                        received += len(block)
                        if on_progress is not None:
                            on_progress(received, total)
                part.replace(target)
            except BaseException:
                part.unlink(missing_ok=True)
                raise
        finally:
            response.close()
        return target

    def search(self, query: str, job_id: str | None = None, top_k: int = 10) -> dict[str, Any]:
        """The indexed chunks nearest to ``query`` (in one job with ``job_id``)."""
        body: dict[str, Any] = {"query": query, "top_k": top_k}
        if job_id is not None:
            body["job_id"] = job_id
        return self._json("POST", "/search", json=body)

    def cleanup(self, older_than_hours: float | None = None) -> dict[str, Any]:
        """Delete finished jobs older than ``older_than_hours`` (admin keys only)."""
        params = {} if older_than_hours is None else {"older_than_hours": older_than_hours}
        return self._json("DELETE", "/cleanup", params=params)
