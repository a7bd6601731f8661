"""A real local HTTP server base for the provider fakes: recording, scriptable faults.

Each fake is a :class:`http.server.ThreadingHTTPServer` on a free loopback port; the
production client talks to it over real sockets. ``fail(status, times, retry_after)``
makes the next ``times`` requests answer that status before the fake's own logic runs.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np


@dataclass
class Recorded:
    """One request as the fake received it."""

    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    at: float = field(default_factory=time.monotonic)


@dataclass
class Fault:
    status: int
    retry_after: str | None
    body: dict[str, Any]


Answer = tuple[int, dict[str, Any]]


class FakeServer:
    """Base of the fakes: subclasses implement :meth:`answer`."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                fake._serve(self)

            def do_GET(self) -> None:  # noqa: N802
                fake._serve(self)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """Base URL of the server."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def fail(
        self,
        status: int,
        times: int = 1,
        *,
        retry_after: str | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        """Answer the next ``times`` requests with ``status`` (and ``Retry-After``)."""
        with self._lock:
            for _ in range(times):
                self._faults.append(Fault(status, retry_after, body or self.error_body(status)))

    def error_body(self, status: int, message: str = "scripted failure") -> dict[str, Any]:
        """The provider's error body for ``status``."""
        return {"detail": message}

    def answer(self, rec: Recorded) -> Answer:
        """Status and JSON body for a request (no scripted fault pending)."""
        raise NotImplementedError

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        rec = Recorded(
            parts.path,
            parse_qs(parts.query),
            {k.lower(): v for k, v in handler.headers.items()},
            body,
        )
        headers: dict[str, str] = {}
        with self._lock:
            self.requests.append(rec)
            fault = self._faults.popleft() if self._faults else None
        if fault is not None:
            status, payload = fault.status, fault.body
            if fault.retry_after is not None:
                headers["Retry-After"] = fault.retry_after
        else:
            status, payload = self.answer(rec)
        data = json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(data)


def seeded_unit(seed: str, dims: int) -> np.ndarray[Any, np.dtype[np.float64]]:
    """A deterministic unit vector for ``seed``."""
    digest = hashlib.sha256(seed.encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    v = rng.standard_normal(dims)
    return np.asarray(v / np.linalg.norm(v))


def fake_tokens(text: str) -> int:
    """The fakes' own token count: about what a real BPE gives for English (1.3 per word)."""
    return -(-len(text.split()) * 13 // 10)
