"""Bodies of webhooks and subscriptions."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from ragcast.api.schemas.jobs import JobStatus
from ragcast.notify.outbox import EVENTS
from ragcast.spec import (
    EmbeddingModelConfig,
    ProcessingSettings,
    VectorDbConfig,
)

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
