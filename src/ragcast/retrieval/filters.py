"""Search filters: one definition, turned into a vector-store ``where`` and into SQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

#: the filter fields ``POST /search`` takes, besides the query's own fields
FIELDS = (
    "job_id",
    "content_id",
    "platform",
    "language",
    "channel",
    "speaker",
    "uploaded_after",
    "uploaded_before",
    "min_confidence",
)


def date_key(value: date) -> int:
    """A date as the integer ``YYYYMMDD`` (stored as ``upload_ts`` in vector metadata)."""
    return value.year * 10000 + value.month * 100 + value.day


def upload_ts(upload_date: str | None) -> int | None:
    """``upload_ts`` of an item's ``upload_date`` (yt-dlp's ``YYYYMMDD``), when it has one."""
    if upload_date and len(upload_date) == 8 and upload_date.isdigit():
        return int(upload_date)
    return None


@dataclass(frozen=True, slots=True)
class Filters:
    """What a search is restricted to (every field optional; all of them must hold)."""

    job_id: str | None = None
    content_id: str | None = None
    platform: str | None = None
    language: str | None = None
    channel: str | None = None
    #: any speaker of a chunk, as named (or by label, ``SPEAKER_00``, while unnamed)
    speaker: str | None = None
    #: upload date range, inclusive at both ends
    uploaded_after: date | None = None
    uploaded_before: date | None = None
    #: the least recogniser confidence of a chunk (0..1); chunks without one (documents,
    #: captions, chunks indexed before confidences were kept) never pass it
    min_confidence: float | None = None

    def vector_where(self, job_contents: list[str] | None) -> dict[str, Any]:
        """The metadata filter for a vector store (the tenant is passed apart).

        ``job_contents`` are the content ids of the ``job_id`` filter's job: a content's
        vectors are shared by every job of the user that indexed it.
        """
        where: dict[str, Any] = {}
        if self.content_id is not None:
            where["content_id"] = self.content_id
        elif job_contents is not None:
            where["content_id"] = (
                job_contents[0] if len(job_contents) == 1 else {"$in": job_contents}
            )
        for key in ("platform", "language", "channel"):
            value = getattr(self, key)
            if value is not None:
                where[key] = value
        if self.speaker is not None:  # anyone who speaks in the chunk, not only the main one
            where["speaker_names"] = {"$contains": self.speaker}
        span: dict[str, int] = {}
        if self.uploaded_after is not None:
            span["$gte"] = date_key(self.uploaded_after)
        if self.uploaded_before is not None:
            span["$lte"] = date_key(self.uploaded_before)
        if span:
            where["upload_ts"] = span
        if self.min_confidence is not None:
            # stores keep no nulls: a record without a confidence fails the range
            where["confidence"] = {"$gte": self.min_confidence}
        return where

    def sql(self) -> tuple[list[str], dict[str, Any]]:
        """Conditions over ``items i`` and ``jobs j``, with their bound parameters."""
        conds: list[str] = []
        params: dict[str, Any] = {}
        columns = {
            "job_id": "j.job_id",
            "content_id": "i.content_id",
            "platform": "j.platform",
            "language": "i.language",
            "channel": "i.channel",
        }
        for key, column in columns.items():
            value = getattr(self, key)
            if value is not None:
                conds.append(f"{column} = :f_{key}")
                params[f"f_{key}"] = value
        if self.speaker is not None:
            conds.append(
                "EXISTS (SELECT 1 FROM chunk_speakers cs"
                " WHERE cs.chunk_id = c.id AND cs.name = :f_speaker)"
            )
            params["f_speaker"] = self.speaker
        if self.uploaded_after is not None:
            conds.append("i.upload_date >= :f_after")
            params["f_after"] = str(date_key(self.uploaded_after))
        if self.uploaded_before is not None:
            conds.append("i.upload_date <= :f_before")
            params["f_before"] = str(date_key(self.uploaded_before))
        if self.uploaded_after is not None or self.uploaded_before is not None:
            conds.append("length(i.upload_date) = 8")
        if self.min_confidence is not None:
            conds.append("c.confidence >= :f_confidence")  # NULL never passes
            params["f_confidence"] = self.min_confidence
        return conds, params
