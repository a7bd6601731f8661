"""The Python SDK of the Bulk Processing API: :class:`Client` and :class:`AsyncClient`.

>>> from ragcast.client import Client
>>> with Client("http://localhost:8000", "rc_...") as client:  # doctest: +SKIP
...     job = client.process({"job_id": "bulk-1", ...})
...     for event in client.monitor(job["job_id"], job["websocket_url"]):
...         print(event["type"], event.get("progress"))

Both clients share one base (request building, error mapping, the retry policy); errors
are :class:`ApiError` subclasses carrying the contract's error body.
"""

from __future__ import annotations

from ragcast.client._base import TERMINAL_STATUSES, RetryPolicy
from ragcast.client.aio import AsyncClient
from ragcast.client.errors import (
    ApiConnectionError,
    ApiError,
    AuthError,
    ConflictError,
    NotFoundError,
    RateLimitError,
    ValidationError,
)
from ragcast.client.events import (
    CompletedEvent,
    ErrorEvent,
    Event,
    ItemUpdate,
    JobResult,
    ProgressEvent,
)
from ragcast.client.sync import Client

__all__ = [
    "TERMINAL_STATUSES",
    "ApiConnectionError",
    "ApiError",
    "AsyncClient",
    "AuthError",
    "Client",
    "CompletedEvent",
    "ConflictError",
    "ErrorEvent",
    "Event",
    "ItemUpdate",
    "JobResult",
    "NotFoundError",
    "ProgressEvent",
    "RateLimitError",
    "RetryPolicy",
    "ValidationError",
]
