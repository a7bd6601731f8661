"""The FastAPI application: the public contract under ``/api/public/bulk``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from ragcast import __version__, web
from ragcast.api import errors
from ragcast.api.cache import InvalidatingBus, StatusCache, listen_redis
from ragcast.api.middleware import (
    BodyGuardMiddleware,
    CachedStatusMiddleware,
    RequestContextMiddleware,
    redact_tickets_in_logs,
)
from ragcast.api.ratelimit import RateLimiter
from ragcast.api.routes import (
    admin,
    answers,
    exports,
    health,
    jobs,
    media,
    preview,
    process,
    search,
    speakers,
    subscriptions,
    transcripts,
    uploads,
    webhooks,
    ws,
)
from ragcast.auth import KeyCache
from ragcast.context import Context
from ragcast.integrations.mcp import mount as mount_mcp
from ragcast.notify.sender import WebhookSender
from ragcast.pipeline.repairs import repair_vectors
from ragcast.pipeline.retention import sweep as sweep_media
from ragcast.providers.embedders.base import EmbeddingSpec
from ragcast.providers.llms import llm_from_settings
from ragcast.retrieval.layout import migrate_collections
from ragcast.runner.boot import build_context
from ragcast.runner.broker import Runner
from ragcast.settings import Settings
from ragcast.sources.subscriptions import Scheduler
from ragcast.tickets import MediaSigner, TicketSigner, load_secret

log = logging.getLogger(__name__)

API_PREFIX = "/api/public/bulk"


def _move_collections(ctx: Context, stop: threading.Event) -> None:
    """Move jobs of a data dir from before shared collections (see retrieval.layout)."""
    try:
        moved = migrate_collections(ctx, stop)
    except Exception:
        log.exception("moving legacy collections failed; search still reads them")
        return
    if moved:
        log.info("moved %d jobs to shared collections", moved)


def _sweep_media(ctx: Context) -> None:
    """Finish media retention a crash interrupted (see ragcast.pipeline.retention)."""
    try:
        sweep_media(ctx)
    except Exception:
        log.exception("the media retention sweep failed; it runs again at the next start")


def _preload(ctx: Context) -> None:
    """Load the default models in the background so the first job does not wait.

    Only where the workers run: an API-only process loads a model when a request needs
    one (a search embeds its query), never before.
    """
    try:
        ctx.providers.transcriber().warm_up()
        ctx.providers.embedder(EmbeddingSpec("local", 0))
    except Exception:
        log.exception("preloading models failed; they will load on first use")


def create_app(settings: Settings | None = None, *, run_workers: bool | None = None) -> FastAPI:
    """Build the app; with ``run_workers`` the pipeline workers run in this process.

    By default they do in embedded mode and do not when ``RAGCAST_BROKER_URL`` names a
    shared broker (then ``ragcast worker`` processes do the work).
    """
    settings = settings or Settings()
    redact_tickets_in_logs()  # tickets are credentials: never in the access log
    ctx = build_context(settings)
    statuses = StatusCache(settings.read_cache_ttl_s)
    keys = KeyCache(ctx.db.url, settings.read_cache_ttl_s)
    ctx.bus = InvalidatingBus(ctx.bus, statuses)  # an event published here clears its job
    if settings.redis_url:
        statuses.enabled = False  # until the events of other processes are followed
    runner = Runner(ctx)
    scheduler = Scheduler(ctx, runner.start_job.send)  # starts due subscription runs
    sender = WebhookSender(ctx)  # delivers the webhook outbox where the workers run
    if run_workers is None:
        run_workers = runner.embedded
    if run_workers:
        # A Whisper model that cannot be had fails here, at start-up, not at the first item.
        ctx.providers.check_transcriber()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop_moving = threading.Event()
        # chunks a migration changed are embedded again where the workers run
        repairer = threading.Thread(
            target=repair_vectors, args=(ctx, stop_moving), name="ragcast-reembed"
        )
        # media retention a crash interrupted is finished where the workers run
        retention = threading.Thread(target=_sweep_media, args=(ctx,), name="ragcast-retention")
        if run_workers:
            retention.start()
            repairer.start()
            runner.start()
            app.state.runner_started = True
            if runner.embedded:  # a shared broker keeps its messages; the stub does not
                runner.recover()
            sender.start()  # the webhook outbox is sent where the workers run
            scheduler.start()  # and subscriptions start there (one lease holder in all)
        preload = threading.Thread(target=_preload, args=(ctx,), name="ragcast-preload")
        if settings.preload_models and run_workers:
            preload.start()
        follower: asyncio.Task[None] | None = None
        if settings.redis_url:
            follower = asyncio.create_task(
                listen_redis(settings.redis_url, settings.redis_key_prefix, statuses, keys.clear),
                name="ragcast-cache-events",
            )
        mover = threading.Thread(
            target=_move_collections, args=(ctx, stop_moving), name="ragcast-layout"
        )
        mover.start()
        try:
            async with mcp_sessions():  # the MCP server at /mcp (ragcast.integrations.mcp)
                yield
        finally:
            if follower is not None:
                follower.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await follower
            app.state.runner_started = False
            stop_moving.set()
            scheduler.stop()
            runner.stop()
            sender.stop()
            for thread in (preload, mover, repairer, retention):
                if thread.is_alive():
                    # A native library torn down mid-call at exit aborts the process.
                    thread.join()
            ctx.db.dispose()

    app = FastAPI(
        title="ragcast",
        version=__version__,
        description="Audio and video to a searchable RAG index: the Bulk Processing API.",
        lifespan=lifespan,
    )
    app.state.ctx = ctx
    app.state.keys = keys
    app.state.statuses = statuses
    app.state.runner = runner
    app.state.runner_started = False
    app.state.run_workers = run_workers
    app.state.limiter = RateLimiter(
        {
            "process": settings.rate_limit_process,
            "export": settings.rate_limit_export,
            "read": settings.rate_limit_read,
            "write": settings.rate_limit_write,
            "mcp": settings.rate_limit_mcp,
            "ask": settings.rate_limit_ask,
        },
        settings.redis_url,
        settings.redis_key_prefix,
        enabled=settings.rate_limits == "on",
        exempt_admins=settings.rate_limit_exempt_admins,
    )
    # An LLM setting that points nowhere stops the start here, with the setting named.
    app.state.llm = llm_from_settings(settings)
    secret = load_secret(settings.secret_key, settings.data_dir)
    app.state.signer = TicketSigner(secret, settings.ws_ticket_ttl_s)
    app.state.media_signer = MediaSigner(secret, settings.media_link_ttl_s)
    errors.install(app)
    # Added last is outermost: request ids and headers wrap the body guard's answers too.
    app.add_middleware(BodyGuardMiddleware, prefix=API_PREFIX)
    app.add_middleware(CachedStatusMiddleware, prefix=API_PREFIX)
    app.add_middleware(RequestContextMiddleware)

    for module in (
        process,
        jobs,
        transcripts,
        speakers,
        media,
        exports,
        uploads,
        search,
        answers,
        preview,
        subscriptions,
        admin,
        webhooks,
        ws,
    ):
        # Each on the app itself: one level of routers to match, not two.
        app.include_router(module.router, prefix=API_PREFIX)
    app.include_router(health.router)
    mcp_sessions = mount_mcp(app)  # nothing without the `integrations` extra
    web.install(app)  # the dashboard at / (ragcast.web)
    return app
