"""Request and response bodies of the public API, named by role."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ragcast.notify.outbox import EVENTS
from ragcast.spec import (
    ID_PATTERN,
    MAX_JOB_ITEMS,
    EmbeddingModelConfig,
    InputMethod,
    JinaTask,
    JobCreate,
    Platform,
    ProcessingSettings,
    VectorDbConfig,
    normalise_language,
)

JobState = Literal["pending", "initializing", "processing", "completed", "failed", "cancelled"]
ItemState = Literal["pending", "processing", "completed", "failed", "cancelled"]
#: the most items one page of ``GET /job/{job_id}/items`` holds
MAX_ITEMS_PAGE = 1000
ExportFormat = Literal["json", "csv", "parquet", "vector"]

__all__ = [
    "ID_PATTERN",
    "MAX_JOB_ITEMS",
    "EmbeddingModelConfig",
    "InputMethod",
    "JinaTask",
    "JobCreate",
    "Platform",
    "ProcessingSettings",
    "VectorDbConfig",
]  # re-exported: part of the API


class JobAccepted(BaseModel):
    """Answer of ``POST /process``."""

    success: bool = True
    job_id: str
    message: str
    websocket_url: str
    estimated_time: str


class JobResult(BaseModel):
    """Totals of a finished job."""

    total_items: int
    completed_items: int
    failed_items: int
    processing_time: float


class JobStatus(BaseModel):
    """Answer of ``GET /job/{job_id}/status``."""

    job_id: str
    status: JobState
    progress: float
    stage: str
    content_processed: int
    total_content: int
    embeddings: int
    error: str | None = None
    result: JobResult | None = None


class JobSummary(JobStatus):
    """A job in the job list."""

    platform: str
    input_method: str
    embedding_model: str
    vector_db: str
    created_at: str


class JobList(BaseModel):
    """Answer of ``GET /jobs``: one page, newest first."""

    jobs: list[JobSummary]
    total: int
    limit: int
    offset: int


class ItemStatus(BaseModel):
    """One content item of a job, with its own stage and error."""

    index: int
    content_id: str
    source_type: str
    source: str
    title: str | None
    url: str | None
    status: str
    stage: str
    transcript_source: str | None
    duration_s: float | None
    chunks: int
    tokens: int
    attempts: int
    error: str | None
    language: str | None = Field(default=None, description="Spoken or written language")
    language_probability: float | None = Field(
        default=None, description="How sure detection was; null when the job named it"
    )
    warnings: list[str] = Field(default_factory=list, description="What the checks noticed")


class ItemList(BaseModel):
    """Answer of ``GET /job/{job_id}/items``: one page of a job's items, in index order."""

    job_id: str
    items: list[ItemStatus]
    total: int = Field(description="Items that match (all of the job's without `status`)")
    limit: int = Field(description="The page size asked for")
    offset: int = Field(description="How many matching items come before this page")
    next_after: int | None = Field(
        description="Pass as `after` for the next page; null on the last page"
    )


class SpeakerName(BaseModel):
    """A speaker label of an item and what it is called (the label until named)."""

    label: str = Field(description="`SPEAKER_00`, `SPEAKER_01`, ... in order of first words")
    name: str


class TranscriptWord(BaseModel):
    """One word with its time span and speaker."""

    text: str
    start: float | None
    end: float | None
    speaker: str | None = None


class TranscriptSegment(BaseModel):
    """A segment: one speaker's run of words (a Whisper segment, a cue, a paragraph)."""

    start: float | None
    end: float | None
    text: str
    speaker: str | None = Field(default=None, description="Name, or label while unnamed")
    words: list[TranscriptWord] = Field(default_factory=list)


class ItemTranscript(BaseModel):
    """Answer of ``GET /job/{job_id}/items/{index}/transcript?format=json``."""

    job_id: str
    index: int
    content_id: str
    source: str = Field(description="`asr`, `captions` or `document`")
    language: str | None
    duration_s: float | None
    speakers: list[SpeakerName] = Field(
        default_factory=list, description="Empty when the job did not ask for `diarize`"
    )
    segments: list[TranscriptSegment]


class ItemSpeakers(BaseModel):
    """Answer of ``PATCH /job/{job_id}/items/{index}/speakers``."""

    job_id: str
    index: int
    speakers: list[SpeakerName]
    updated_chunks: int = Field(description="Chunks whose speaker metadata was rewritten")


class JobCancelled(BaseModel):
    """Answer of ``POST /job/{job_id}/cancel``."""

    success: bool = True
    job_id: str
    status: JobState


class ExportCreate(BaseModel):
    """Body of ``POST /export``."""

    job_id: str = Field(pattern=ID_PATTERN)
    format: ExportFormat
    export_id: str | None = Field(default=None, pattern=ID_PATTERN)


class ExportAccepted(BaseModel):
    """Answer of ``POST /export``."""

    success: bool = True
    export_id: str
    message: str
    status_url: str


class ExportStatus(BaseModel):
    """Answer of ``GET /export/{export_id}/status``."""

    export_id: str
    status: Literal["pending", "processing", "completed", "failed"]
    progress: float
    download_url: str | None = None
    filename: str | None = None
    file_size: int | None = None
    error: str | None = None


class UploadPublic(BaseModel):
    """Answer of ``POST /uploads``."""

    document_id: str
    filename: str
    size: int
    sha256: str
    content_type: str


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
        description="hybrid: the fused score (0-1); dense: cosine similarity; lexical: "
        "BM25; with rerank: the reranker's score."
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
    deep_link: str | None = Field(
        default=None,
        description="The URL opened at `start_s` (YouTube `t=93s`, Twitch VODs "
        "`t=1h2m3s`); the plain URL where the player takes no time; null without a URL.",
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


class CleanupResult(BaseModel):
    """Answer of ``DELETE /cleanup``."""

    success: bool = True
    deleted_count: int


class JobDeleted(BaseModel):
    """Answer of ``DELETE /job/{job_id}``."""

    success: bool = True
    job_id: str
    deleted_items: int
    deleted_exports: int
    deleted_uploads: int
    deleted_vector_contents: int = Field(
        description="Contents whose vectors were removed (none other of the user's jobs held them)"
    )


class UploadDeleted(BaseModel):
    """Answer of ``DELETE /uploads/{document_id}``."""

    success: bool = True
    document_id: str


class ErrorDetails(BaseModel):
    """Which field was wrong and why."""

    field: str
    issue: str


class ErrorBody(BaseModel):
    """The contract's error body (``details``, ``retry_after``, ``request_id`` by kind)."""

    success: bool = False
    error: str
    message: str
    details: ErrorDetails | None = None
    retry_after: int | None = None
    request_id: str | None = None


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the given error status codes."""
    return {code: {"model": ErrorBody} for code in codes}


#: platforms a subscription can follow (a channel, so never ``documents``)
SubscriptionPlatform = Literal["tiktok", "youtube", "twitch"]
#: seconds per unit of an interval string (``"90s"``, ``"15m"``, ``"1h"``, ``"1d"``)
INTERVAL_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
#: the longest interval a subscription may have: a year
MAX_INTERVAL_S = 366 * 86400


def parse_interval(value: object) -> int:
    """Seconds from an integer or a string: ``"900"``, ``"15m"``, ``"1h"``, ``"1d"``."""
    seconds: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    elif isinstance(value, float) and value.is_integer():
        seconds = int(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        unit = text[-1:] if text[-1:] in INTERVAL_UNITS else "s"
        number = text[:-1] if text[-1:] in INTERVAL_UNITS else text
        if number.isascii() and number.isdigit() and len(number) <= 9:
            seconds = int(number) * INTERVAL_UNITS[unit]
    if seconds is None:
        raise ValueError("seconds (an integer) or a string like '15m', '1h' or '1d'")
    if not 1 <= seconds <= MAX_INTERVAL_S:
        raise ValueError(f"must be between 1 second and {MAX_INTERVAL_S} seconds (a year)")
    return seconds


class SubscriptionCreate(BaseModel):
    """Body of ``POST /subscriptions``: a channel kept indexed, and how often it is looked at.

    Each run is an ordinary channel job of the channel's items not yet indexed.
    """

    platform: SubscriptionPlatform
    channel_url: str = Field(min_length=1, max_length=2048)
    embedding_model: EmbeddingModelConfig
    vector_db: VectorDbConfig
    settings: ProcessingSettings = Field(default_factory=ProcessingSettings)
    interval: int | str = Field(
        default=86400,
        description="How often the channel is looked at: seconds (`3600`) or a string of "
        "a number and a unit, `s`, `m`, `h` or `d` (`15m`, `6h`, `1d`). "
        "At least 15 minutes; answers give it in seconds.",
    )

    @field_validator("interval", mode="before")
    @classmethod
    def _seconds(cls, value: object) -> int:
        return parse_interval(value)

    @property
    def interval_s(self) -> int:
        """The interval in seconds."""
        return int(self.interval)


class SubscriptionPublic(BaseModel):
    """A subscription, with its last run's job read live."""

    subscription_id: str = Field(description="`sub_…`")
    platform: str
    channel_url: str
    embedding_model: EmbeddingModelConfig
    vector_db: VectorDbConfig
    settings: ProcessingSettings
    interval: int = Field(description="Seconds between two runs")
    status: Literal["active", "paused"]
    next_run_at: str | None = Field(description="When the next run starts (while active)")
    runs: int = Field(description="Runs started so far")
    last_job_id: str | None = Field(
        description="The job of the last run: an ordinary job (`GET /job/{job_id}/status`)"
    )
    last_run_at: str | None
    last_job: JobStatus | None = Field(
        default=None, description="Status and totals of `last_job_id`, as they are now"
    )
    last_result: dict[str, Any] | None = Field(
        default=None,
        description="What the last finished run recorded (also sent as `subscription.synced`)",
    )
    created_at: str


class SubscriptionList(BaseModel):
    """Answer of ``GET /subscriptions``: the user's subscriptions, oldest first."""

    subscriptions: list[SubscriptionPublic]
    total: int


class SubscriptionDeleted(SubscriptionPublic):
    """Answer of ``DELETE /subscriptions/{id}``: the subscription as it was; its jobs stay."""

    success: bool = True
    deleted: bool = True


class WebhookCreate(BaseModel):
    """Body of ``POST /webhooks``."""

    url: str = Field(
        max_length=2048,
        description="The http(s) URL events are POSTed to; private and loopback addresses "
        "are refused",
    )
    events: list[str] = Field(
        max_length=50,
        description="The events to send (at least one)",
        json_schema_extra={"minItems": 1, "items": {"type": "string", "enum": list(EVENTS)}},
    )
    description: str | None = Field(default=None, max_length=500)

    @field_validator("events")
    @classmethod
    def _known_events(cls, value: list[str]) -> list[str]:
        allowed = ", ".join(EVENTS)
        if not value:
            raise ValueError(f"name at least one event; allowed: {allowed}")
        unknown = [e for e in value if e not in EVENTS]
        if unknown:
            raise ValueError(f"unknown event {unknown[0][:64]!r}; allowed: {allowed}")
        return list(dict.fromkeys(value))  # a repeated name subscribes once


class WebhookPublic(BaseModel):
    """A webhook as listed: everything but its secret."""

    id: str = Field(description="`wh_…`")
    url: str
    events: list[str]
    description: str | None
    created_at: str


class WebhookCreated(WebhookPublic):
    """Answer of ``POST /webhooks``: the only answer that carries the signing secret."""

    secret: str = Field(
        description="`whsec_…`: verifies the `webhook-signature` header (Standard Webhooks); "
        "shown only here"
    )


class WebhookList(BaseModel):
    """Answer of ``GET /webhooks``: the user's webhooks, oldest first."""

    webhooks: list[WebhookPublic]
    total: int


class WebhookDeleted(WebhookPublic):
    """Answer of ``DELETE /webhooks/{id}``: the webhook as it was; pending deliveries go too."""

    success: bool = True
    deleted: bool = True


class DeliveryAttempt(BaseModel):
    """One POST of a delivery."""

    at: str
    status_code: int | None = Field(description="The receiver's status; null when none came")
    error: str | None
    duration_ms: int


class WebhookDeliveryStatus(BaseModel):
    """One event sent (or being sent) to a webhook."""

    id: str = Field(description="`msg_…`, the `webhook-id` header, the same on every attempt")
    event: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: str | None = Field(description="When it is tried next (while pending)")
    created_at: str
    delivered_at: str | None
    payload: dict[str, Any]
    log: list[DeliveryAttempt] = Field(description="Every attempt, oldest first")


class WebhookDeliveryList(BaseModel):
    """Answer of ``GET /webhooks/{id}/deliveries``: one page, newest first."""

    webhook_id: str
    deliveries: list[WebhookDeliveryStatus]
    total: int
    limit: int
    offset: int
