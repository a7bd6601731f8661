"""Typed messages of the progress WebSocket: ``progress``, then ``completed`` or ``error``."""

from __future__ import annotations

import json
from typing import Any, Literal, NotRequired, TypedDict, cast

from ragcast.client.errors import ApiError


class ItemUpdate(TypedDict):
    """The item that moved, carried by a ``progress`` message (a ragcast extension)."""

    index: int
    content_id: str
    title: str | None
    status: str
    stage: str
    error: str | None


class JobResult(TypedDict):
    """Totals of a finished job."""

    total_items: int
    completed_items: int
    failed_items: int
    processing_time: float


class ProgressEvent(TypedDict):
    """The contract's progress update (note the camelCase ``contentProcessed``)."""

    type: Literal["progress"]
    job_id: str
    progress: float
    stage: str
    contentProcessed: int  # noqa: N815 - the contract's name
    embeddings: int
    status: str
    total_content: NotRequired[int]
    item: NotRequired[ItemUpdate]


class CompletedEvent(TypedDict):
    """The terminal message of a job that completed."""

    type: Literal["completed"]
    job_id: str
    progress: float
    stage: str
    result: JobResult
    status: NotRequired[str]


class ErrorEvent(TypedDict):
    """The terminal message of a job that failed or was cancelled."""

    type: Literal["error"]
    job_id: str
    message: str
    status: NotRequired[str]
    result: NotRequired[JobResult]


Event = ProgressEvent | CompletedEvent | ErrorEvent
"""Any message of the progress WebSocket; ``event["type"]`` tells which."""

TERMINAL_MESSAGES = frozenset({"completed", "error"})


def parse_event(raw: str | bytes) -> Event:
    """Decode one WebSocket message; a message that is not an event is an :class:`ApiError`."""
    try:
        data: Any = json.loads(raw)
    except ValueError as exc:
        raise _bad(f"not JSON: {raw[:100]!r}") from exc
    if not isinstance(data, dict) or data.get("type") not in ("progress", "completed", "error"):
        raise _bad(f"unknown message: {str(data)[:100]}")
    return cast(Event, data)


def is_terminal(event: Event) -> bool:
    """Whether ``event`` is the last message of its socket."""
    return event["type"] in TERMINAL_MESSAGES


def _bad(message: str) -> ApiError:
    return ApiError(0, {"error": "bad_message", "message": f"WebSocket sent {message}"})
