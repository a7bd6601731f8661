"""The Python SDK of the Bulk Processing API.

>>> from ragcast.client import Client
>>> with Client("http://localhost:8000", "rc_...") as client:  # doctest: +SKIP
...     job = client.process({"job_id": "bulk-1", ...})
...     for message in client.monitor(job["job_id"], job["websocket_url"]):
...         print(message["type"], message.get("progress"))
"""

from __future__ import annotations

from ragcast.client.errors import (
    ApiConnectionError,
    ApiError,
    AuthError,
    ConflictError,
    NotFoundError,
    RateLimitError,
    ValidationError,
)
from ragcast.client.sync import TERMINAL_STATUSES, Client

__all__ = [
    "TERMINAL_STATUSES",
    "ApiConnectionError",
    "ApiError",
    "AuthError",
    "Client",
    "ConflictError",
    "NotFoundError",
    "RateLimitError",
    "ValidationError",
]
