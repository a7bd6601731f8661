"""SQLAlchemy models of the job store (SQLite in embedded mode, PostgreSQL at scale)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    """Timezone-aware now, the only clock the store uses."""
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """A stored time as UTC-aware: SQLite hands times back naive (they are UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def iso_utc(moment: datetime | None) -> str | None:
    """A stored time in ISO 8601, UTC; None stays None."""
    return None if moment is None else as_utc(moment).isoformat()


class Base(DeclarativeBase):
    """Declarative base of every table."""

    type_annotation_map = {dict[str, Any]: JSON, datetime: DateTime(timezone=True)}


class User(Base):
    """A user; every object belongs to exactly one."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(Base):
    """An API key, stored only as a SHA-256 hash; ``prefix`` finds it without a scan."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
    #: after this the key answers 401 "expired" (``keys create --expires-in``, rotation)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)

    user: Mapped[User] = relationship(lazy="joined")


class WsTicket(Base):
    """A WebSocket ticket that has been used: each opens one socket only."""

    __tablename__ = "ws_tickets"

    nonce: Mapped[str] = mapped_column(String(32), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class Upload(Base):
    """A file a user uploaded; ``document_id`` is what ``uploaded_documents`` names."""

    __tablename__ = "uploads"

    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(512))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    content_type: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))
    path: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: what is kept of the recording since every job using it finished (migration
    #: ``0016``): ``original``, ``audio`` (its rendition only) or ``none``; None: undecided
    media_kept: Mapped[str | None] = mapped_column(String(16), default=None)


class Job(Base):
    """A processing job; ``job_id`` is the client's idempotency key within one user."""

    __tablename__ = "jobs"
    __table_args__ = (UniqueConstraint("user_id", "job_id", name="uq_jobs_user_job"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[str] = mapped_column(String(128))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    platform: Mapped[str] = mapped_column(String(32))
    input_method: Mapped[str] = mapped_column(String(32))
    embedding_model: Mapped[str] = mapped_column(String(64))
    dimensions: Mapped[int] = mapped_column(Integer)
    vector_db: Mapped[str] = mapped_column(String(32))
    collection: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    stage: Mapped[str] = mapped_column(String(255), default="Queued")
    content_processed: Mapped[int] = mapped_column(Integer, default=0)
    total_content: Mapped[int] = mapped_column(Integer, default=0)
    completed_items: Mapped[int] = mapped_column(Integer, default=0)
    failed_items: Mapped[int] = mapped_column(Integer, default=0)
    embeddings: Mapped[int] = mapped_column(Integer, default=0)
    #: the items' shares of work done, summed (``progress`` is 100 x this / total_content)
    work_done: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    error: Mapped[str | None] = mapped_column(Text, default=None)
    processing_time: Mapped[float | None] = mapped_column(Float, default=None)
    #: how chunks were counted: a tokenizer's name, or the estimate used in its place
    tokenizer: Mapped[str | None] = mapped_column(String(255), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)

    items: Mapped[list[Item]] = relationship(
        back_populates="job", order_by="Item.index", cascade="all, delete-orphan"
    )


class Item(Base):
    """One content item of a job; ``stage`` is its last *finished* pipeline stage."""

    __tablename__ = "items"
    __table_args__ = (
        UniqueConstraint("job_pk", "index", name="uq_items_job_index"),
        Index("ix_items_job_status", "job_pk", "status", "index"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    job_pk: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    index: Mapped[int] = mapped_column(Integer)
    content_id: Mapped[str] = mapped_column(String(128), index=True)
    source_type: Mapped[str] = mapped_column(String(32))
    source_ref: Mapped[str] = mapped_column(Text)
    title: Mapped[str | None] = mapped_column(Text, default=None)
    url: Mapped[str | None] = mapped_column(Text, default=None)
    channel: Mapped[str | None] = mapped_column(Text, default=None)
    upload_date: Mapped[str | None] = mapped_column(String(16), default=None)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    stage: Mapped[str] = mapped_column(String(16), default="queued")
    media_path: Mapped[str | None] = mapped_column(Text, default=None)
    #: what is kept of the item's recording, decided once its job (and every other job
    #: using the recording) finished: ``original``, ``audio`` or ``none``; None: not yet
    media_kept: Mapped[str | None] = mapped_column(String(16), default=None)
    content_type: Mapped[str | None] = mapped_column(String(128), default=None)
    transcript_source: Mapped[str | None] = mapped_column(String(16), default=None)
    duration_s: Mapped[float | None] = mapped_column(Float, default=None)
    chunk_count: Mapped[int] = mapped_column(Integer, default=0)
    token_count: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    #: spoken (or written) language, ISO 639-1; detected unless the job named it
    language: Mapped[str | None] = mapped_column(String(16), default=None, index=True)
    language_probability: Mapped[float | None] = mapped_column(Float, default=None)
    #: what the transcript checks noticed without failing the item
    warnings: Mapped[list[str] | None] = mapped_column(JSON, default=None)
    #: names given to the item's speaker labels (``{"SPEAKER_00": "Host"}``)
    speaker_map: Mapped[dict[str, str] | None] = mapped_column(JSON, default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    job: Mapped[Job] = relationship(back_populates="items")


class Transcript(Base):
    """The checkpointed transcript of an item: computed once, never again."""

    __tablename__ = "transcripts"

    item_id: Mapped[int] = mapped_column(
        ForeignKey("items.id", ondelete="CASCADE"), primary_key=True
    )
    source: Mapped[str] = mapped_column(String(16))
    language: Mapped[str | None] = mapped_column(String(16), default=None)
    duration_s: Mapped[float | None] = mapped_column(Float, default=None)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Chunk(Base):
    """A chunk of an item's transcript; ``embedding`` is float32 bytes once embedded."""

    __tablename__ = "chunks"
    __table_args__ = (UniqueConstraint("item_id", "chunk_index", name="uq_chunks_item_index"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    chunk_index: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    start_s: Mapped[float | None] = mapped_column(Float, default=None)
    end_s: Mapped[float | None] = mapped_column(Float, default=None)
    token_count: Mapped[int] = mapped_column(Integer)
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    #: float32 bytes of a multi-vector embedding (n x dimensions), when the job asked for one
    multi_embedding: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    #: speaker labels of the chunk's words, most words first; None when not diarized
    speakers: Mapped[list[str] | None] = mapped_column(JSON, default=None)
    #: what the main speaker is called: the name given to ``speakers[0]``, else the label
    speaker: Mapped[str | None] = mapped_column(String(128), default=None)
    #: the recogniser's mean word probability over the chunk (0..1); None for captions,
    #: documents and chunks made before it was kept
    confidence: Mapped[float | None] = mapped_column(Float, default=None)


class ChunkSpeaker(Base):
    """One speaker of a chunk, by the name shown (the label while unnamed): the ``speaker``
    search filter matches a chunk any of whose speakers it names."""

    __tablename__ = "chunk_speakers"
    __table_args__ = (Index("ix_chunk_speakers_name", "name", "chunk_id"),)

    chunk_id: Mapped[int] = mapped_column(
        ForeignKey("chunks.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(128), primary_key=True)


class Voice(Base):
    """A named voice in a user's speaker library: one item's speaker, as its diarizer's
    embedding (a unit vector), kept when the user named it. A voice's centroid is the mean
    of its rows of one embedding model; later diarized items are matched against it."""

    __tablename__ = "voices"
    __table_args__ = (Index("ix_voices_user_name", "user_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    #: the speaker-embedding model whose space ``vector`` is in
    model: Mapped[str] = mapped_column(String(64))
    vector: Mapped[list[float]] = mapped_column(JSON)
    #: seconds of speech the vector was made from
    speech_s: Mapped[float] = mapped_column(Float, default=0.0)
    #: the item and label it was named from (the item may since have been deleted)
    item_id: Mapped[int | None] = mapped_column(
        ForeignKey("items.id", ondelete="SET NULL"), default=None, index=True
    )
    label: Mapped[str | None] = mapped_column(String(32), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Export(Base):
    """An export of a job's chunks to a file, written by a background task."""

    __tablename__ = "exports"
    __table_args__ = (UniqueConstraint("user_id", "export_id", name="uq_exports_user_export"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    export_id: Mapped[str] = mapped_column(String(128))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    job_pk: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    format: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    filename: Mapped[str | None] = mapped_column(String(255), default=None)
    path: Mapped[str | None] = mapped_column(Text, default=None)
    file_size: Mapped[int | None] = mapped_column(Integer, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)

    job: Mapped[Job] = relationship()


#: the port a URL without one connects to
DEFAULT_PORTS = {"http": 80, "https": 443}


def endpoint_of(url: str) -> str:
    """The endpoint a webhook URL connects to: ``scheme://host:port``, lower case, the port
    always written; the sender keeps one attempt in flight per endpoint."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    try:
        port = parts.port or DEFAULT_PORTS.get(scheme, 0)
    except ValueError:  # refused when the webhook is made; never sent
        port = 0
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def _endpoint_default(context: Any) -> str:
    """``endpoint`` of a webhook row being inserted: that of its ``url``."""
    return endpoint_of(str(context.get_current_parameters()["url"]))


class Webhook(Base):
    """A user's webhook endpoint: where events are delivered, signed with ``secret``."""

    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: the public id (``wh_…``)
    webhook_id: Mapped[str] = mapped_column(String(40), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(Text)
    events: Mapped[list[str]] = mapped_column(JSON)
    description: Mapped[str | None] = mapped_column(Text, default=None)
    #: ``whsec_`` + base64 of the signing key (Standard Webhooks)
    secret: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: :func:`endpoint_of` the URL (migration ``0010``): one attempt in flight per endpoint
    endpoint: Mapped[str] = mapped_column(String(320), nullable=True, default=_endpoint_default)
    #: when a delivery of this webhook was last claimed: the sender serves users in turn
    served_at: Mapped[datetime | None] = mapped_column(default=None)


class WebhookDelivery(Base):
    """One event for one webhook: the durable outbox row, retried until delivered."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        # a webhook's oldest due row without a scan of its history (the sender's claim)
        Index("ix_webhook_deliveries_due", "webhook_pk", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    webhook_pk: Mapped[int] = mapped_column(
        ForeignKey("webhooks.id", ondelete="CASCADE"), index=True
    )
    #: the Standard Webhooks message id (``msg_…``), the same on every attempt
    message_id: Mapped[str] = mapped_column(String(64), unique=True)
    event: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: ``pending`` until ``delivered``, or ``failed`` once the retries ran out
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(default=utcnow, index=True)
    #: a sender holds the row until then (one sender per row across processes)
    claimed_until: Mapped[datetime | None] = mapped_column(default=None, index=True)
    last_status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    #: every attempt: ``{"at", "status_code", "error", "duration_ms"}``
    log: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(default=None)


class Subscription(Base):
    """A channel kept current: a job of its new items every ``interval_s`` seconds."""

    __tablename__ = "subscriptions"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: the public id (``sub_…``)
    subscription_id: Mapped[str] = mapped_column(String(40), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    platform: Mapped[str] = mapped_column(String(32))
    channel_url: Mapped[str] = mapped_column(Text)
    #: ``embedding_model``, ``vector_db`` and ``settings`` of the jobs it starts
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    interval_s: Mapped[int] = mapped_column(Integer)
    #: ``active`` or ``paused``
    status: Mapped[str] = mapped_column(String(16), default="active")
    next_run_at: Mapped[datetime | None] = mapped_column(default=utcnow, index=True)
    runs: Mapped[int] = mapped_column(Integer, default=0)
    last_job_id: Mapped[str | None] = mapped_column(String(128), default=None)
    last_run_at: Mapped[datetime | None] = mapped_column(default=None)
    last_result: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Lease(Base):
    """A named lease: the one process holding it (until ``expires_at``) does the work."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime] = mapped_column()


class ReembedChunk(Base):
    """A chunk whose text changed after it was embedded (migration ``0012``): the workers
    embed it again and rewrite its vector (ragcast.pipeline.repairs), then delete the row."""

    __tablename__ = "reembed_chunks"

    chunk_id: Mapped[int] = mapped_column(
        ForeignKey("chunks.id", ondelete="CASCADE"), primary_key=True
    )


class WorkerHeartbeat(Base):
    """What one worker process is working on, renewed every few seconds (the reconciler
    leaves that work alone while ``beat_at`` is fresh)."""

    __tablename__ = "worker_heartbeats"

    holder: Mapped[str] = mapped_column(String(128), primary_key=True)
    beat_at: Mapped[datetime] = mapped_column(index=True)
    #: ids in progress by kind: ``{"item": [...], "job": [...], "export": [...]}``
    work: Mapped[dict[str, Any]] = mapped_column(JSON)
