"""What every route shares: job and item states, the error body."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

JobState = Literal["pending", "initializing", "processing", "completed", "failed", "cancelled"]
ItemState = Literal["pending", "processing", "completed", "failed", "cancelled"]
#: the most items one page of ``GET /job/{job_id}/items`` holds
MAX_ITEMS_PAGE = 1000
ExportFormat = Literal["json", "csv", "parquet", "vector"]


class ErrorDetails(BaseModel):
    """Which field was wrong and why."""

    field: str
    issue: str


class RateLimitDetails(BaseModel):
    """Which rate-limit bucket refused a ``429``, its limit and the setting that raises it."""

    bucket: str
    limit: int
    window_s: int
    setting: str


class ErrorBody(BaseModel):
    """The contract's error body (``details``, ``retry_after``, ``request_id`` by kind)."""

    success: bool = False
    error: str
    message: str
    details: ErrorDetails | RateLimitDetails | None = None
    retry_after: int | None = None
    request_id: str | None = None


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the given error status codes."""
    return {code: {"model": ErrorBody} for code in codes}


#: platforms a subscription can follow (a channel, so never ``documents``)
