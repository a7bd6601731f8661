"""Bodies of search and channel previews."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ragcast.spec import (
    ID_PATTERN,
    Platform,
    normalise_language,
)


class SearchQuery(BaseModel):
    """Body of ``POST /search``: the query, how to search, and filters (all must hold)."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=4096)
    mode: Literal["hybrid", "dense", "lexical"] = Field(
        default="hybrid",
        description="`hybrid` fuses the lexical and dense rankings; `dense` compares "
        "embeddings only; `lexical` matches terms only (BM25).",
    )
    top_k: int = Field(default=10, ge=1, le=100)
    job_id: str | None = Field(default=None, pattern=ID_PATTERN)
    content_id: str | None = Field(
        default=None, min_length=1, max_length=128, description="Only this content's chunks."
    )
    platform: Platform | None = Field(default=None, description="Only jobs of this platform.")
    language: str | None = Field(
        default=None, max_length=32, description="Only chunks in this language (ISO 639-1)."
    )
    channel: str | None = Field(
        default=None,
        min_length=1,
        max_length=512,
        description="Only items of this channel (its name as the platform gives it).",
    )
    speaker: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="Only chunks whose main speaker has this name (or label, `SPEAKER_00`, "
        "while unnamed); see `PATCH /job/{job_id}/items/{index}/speakers`.",
    )
    uploaded_after: str | None = Field(
        default=None,
        description="Only items uploaded on or after this date (`YYYY-MM-DD` or `YYYYMMDD`).",
    )
    uploaded_before: str | None = Field(
        default=None,
        description="Only items uploaded on or before this date (`YYYY-MM-DD` or `YYYYMMDD`).",
    )
    context: int = Field(
        default=0,
        ge=0,
        le=5,
        description="Neighbouring chunks to return with each hit, on each side, merged "
        "into one passage with its time span.",
    )
    rerank: bool = Field(
        default=False, strict=True, description="Reorder the best candidates with the reranker."
    )
    min_score: float | None = Field(
        default=None,
        ge=0,
        le=1,
        strict=True,
        allow_inf_nan=False,
        description="Only hits scoring at least this (0-1, on the fixed scale of `score`); "
        "with `rerank`, candidates are kept by this score before they are reordered.",
    )
    min_confidence: float | None = Field(
        default=None,
        ge=0,
        le=1,
        strict=True,
        allow_inf_nan=False,
        description="Only recognised chunks whose `confidence` is at least this (0-1); "
        "documents and captions have none and are left out.",
    )

    @field_validator("language")
    @classmethod
    def _known_language(cls, value: str | None) -> str | None:
        if value is None:
            return None
        code = normalise_language(value)
        if code == "auto":
            raise ValueError("name a language code, not 'auto', or leave language out")
        return code

    @field_validator("uploaded_after", "uploaded_before")
    @classmethod
    def _a_date(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return parse_day(value).isoformat()


def parse_day(value: str) -> date:
    """A calendar day from ``YYYY-MM-DD`` or ``YYYYMMDD``; ValueError says which forms."""
    text = value.strip()
    try:
        if len(text) == 8 and text.isdigit():
            return date(int(text[:4]), int(text[4:6]), int(text[6:]))
        if len(text) == 10:
            return date.fromisoformat(text)
    except ValueError:
        pass
    raise ValueError(f"not a date: {value[:40]!r}; expected YYYY-MM-DD or YYYYMMDD")


class SearchPassage(BaseModel):
    """A hit with its neighbouring chunks, as one text over one time span."""

    text: str
    start_s: float | None
    end_s: float | None
    first_chunk: int
    last_chunk: int


class SearchHit(BaseModel):
    """One chunk found by a search."""

    score: float = Field(
        description="Relevance on a fixed 0-1 scale that means the same for every query "
        "(hybrid: 0.5 x meaning + 0.5 x terms; dense: the model's cosine similarity mapped "
        "from its unrelated level to its strong-match level; lexical: the share of the "
        "query's term weight the chunk holds); with rerank: the reranker's score."
    )
    text: str
    start_s: float | None
    end_s: float | None
    job_id: str
    content_id: str
    chunk_index: int
    source_type: str
    source: str
    title: str | None
    url: str | None
    platform: str | None = None
    language: str | None = Field(default=None, description="Language of the chunk's item")
    channel: str | None = None
    speaker: str | None = Field(
        default=None, description="The chunk's main speaker (name or label), when diarized"
    )
    speakers: list[str] = Field(
        default_factory=list, description="Everyone speaking in the chunk, most words first"
    )
    upload_date: str | None = Field(default=None, description="`YYYYMMDD`, where known")
    confidence: float | None = Field(
        default=None,
        description="How sure the recogniser was of the chunk's words: their mean "
        "probability (0-1); null for documents and captions.",
    )
    deep_link: str | None = Field(
        default=None,
        description="The URL opened at `start_s` (YouTube `t=93s`, Twitch VODs "
        "`t=1h2m3s`); the plain URL where the player takes no time; for an upload, "
        "`media_url` with a media fragment (`#t=93`); null with neither.",
    )
    media_url: str | None = Field(
        default=None,
        description="A signed, expiring link to the item's recording that a browser can "
        "play (`<audio src>`) without the API key (`GET /media/{content_id}`); null when "
        "ragcast keeps no recording of it.",
    )
    context: SearchPassage | None = Field(
        default=None, description="With `context` > 0: the hit and its neighbours."
    )


class SearchResults(BaseModel):
    """Answer of ``POST /search``."""

    success: bool = True
    query: str
    mode: str = "hybrid"
    results: list[SearchHit]


class PreviewItem(BaseModel):
    """One item of a channel listing."""

    id: str
    title: str | None
    duration: float | None
    upload_date: str | None
    url: str
    thumbnail: str | None


class ChannelPreview(BaseModel):
    """Answer of ``GET /preview``: one page of a channel's items."""

    url: str
    platform: str
    title: str | None
    channel: str | None
    items: list[PreviewItem]
    page: int
    page_size: int
    has_more: bool
