"""``ragcast worker``: pipeline workers in their own process, until SIGINT or SIGTERM."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterable
from types import FrameType

from ragcast.notify.sender import WebhookSender
from ragcast.pipeline.repairs import repair_vectors
from ragcast.providers.embedders.base import EmbeddingSpec
from ragcast.runner.boot import build_context
from ragcast.runner.broker import QUEUES, Runner
from ragcast.settings import Settings
from ragcast.sources.subscriptions import Scheduler

log = logging.getLogger(__name__)


def run_worker(
    settings: Settings, *, queues: Iterable[str] | None = None, threads: int | None = None
) -> None:
    """Consume ``queues`` (default: all) with ``threads`` worker threads until signalled."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    chosen = list(queues or QUEUES)
    unknown = sorted(set(chosen) - set(QUEUES))
    if unknown:
        raise SystemExit(f"unknown queues: {', '.join(unknown)}; known: {', '.join(QUEUES)}")
    ctx = build_context(settings)
    if "ragcast.transcribe" in chosen:
        ctx.providers.check_transcriber()  # fails now, not at the first item
    if settings.preload_models and "ragcast.transcribe" in chosen:
        ctx.providers.transcriber().warm_up()
    if settings.preload_models and "ragcast.embed" in chosen:
        ctx.providers.embedder(EmbeddingSpec("local", 0))
    runner = Runner(ctx)
    done = threading.Event()

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: stopping at the next safe point", signum)
        done.set()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    runner.start(threads=threads, queues=chosen)
    # Every worker sends webhooks too: claims in the store keep each delivery to one sender.
    sender = WebhookSender(ctx)
    sender.start()
    # and runs subscriptions: the one holding the store's lease starts the due runs
    scheduler = Scheduler(ctx, runner.start_job.send)
    scheduler.start()
    # chunks a migration changed are embedded again where embedding runs
    repairer = threading.Thread(target=repair_vectors, args=(ctx, done), name="ragcast-reembed")
    if "ragcast.embed" in chosen:
        repairer.start()
    log.info("worker consuming %s", ", ".join(chosen))
    try:
        done.wait()
    finally:
        scheduler.stop()
        runner.stop()
        sender.stop()
        if repairer.is_alive():
            repairer.join()
        ctx.db.dispose()
