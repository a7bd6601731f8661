"""Dramatiq actors and the in-process runner of the embedded mode.

The actors are declared per broker (not at import time) so a process can build its
broker from settings first. In embedded mode the broker is Dramatiq's ``StubBroker``
with worker threads in this process; the store is the source of truth, and
:meth:`Runner.recover` re-enqueues unfinished work at start-up, so nothing accepted is
lost when the process dies.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import dramatiq
from dramatiq import Actor
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    CurrentMessage,
    Pipelines,
    Retries,
    ShutdownNotifications,
)
from sqlalchemy import select

from ragcast.context import Context
from ragcast.exports.job import run_export
from ragcast.pipeline.progress import TERMINAL_JOB
from ragcast.runner import tasks
from ragcast.store.models import Export, Job

log = logging.getLogger(__name__)

QUEUE_JOBS = "ragcast.jobs"
QUEUE_ITEMS = "ragcast.items"
QUEUE_EXPORTS = "ragcast.exports"
STOP_TIMEOUT_MS = 120_000


def _middleware(ctx: Context) -> list[Any]:
    # No TimeLimit: a three-hour recording must not be killed by a default limit.
    return [
        AgeLimit(),
        ShutdownNotifications(),
        Callbacks(),
        Pipelines(),
        Retries(
            max_retries=ctx.settings.max_retries,
            min_backoff=ctx.settings.retry_min_backoff_ms,
            max_backoff=5 * 60 * 1000,
        ),
        CurrentMessage(),
    ]


def _last_attempt(max_retries: int) -> bool:
    message = CurrentMessage.get_current_message()
    if message is None:
        return True
    return int(message.options.get("retries", 0)) >= max_retries


class Runner:
    """The pipeline actors bound to one broker and one context."""

    def __init__(self, ctx: Context, broker: dramatiq.Broker | None = None) -> None:
        self.ctx = ctx
        self.broker = broker or StubBroker(middleware=_middleware(ctx))
        self._worker: dramatiq.Worker | None = None
        max_retries = ctx.settings.max_retries

        def start_job(job_pk: int) -> None:
            tasks.start_job(ctx, job_pk, self._enqueue_item)

        def process_item(item_id: int) -> None:
            tasks.process_item(ctx, item_id, last_attempt=_last_attempt(max_retries))

        def export(export_pk: int) -> None:
            run_export(ctx, export_pk)

        self.start_job = self._actor(start_job, "start_job", QUEUE_JOBS)
        self.process_item = self._actor(process_item, "process_item", QUEUE_ITEMS)
        self.export = self._actor(export, "run_export", QUEUE_EXPORTS)

    def _actor(self, fn: Callable[[int], None], name: str, queue: str) -> Actor[[int], None]:
        decorate = dramatiq.actor(actor_name=name, queue_name=queue, broker=self.broker)
        actor: Actor[[int], None] = decorate(fn)
        return actor

    def _enqueue_item(self, item_id: int) -> None:
        self.process_item.send(item_id)

    def start(self, threads: int | None = None) -> None:
        """Start worker threads in this process (embedded mode)."""
        self.broker.emit_after("process_boot")
        self._worker = dramatiq.Worker(
            self.broker, worker_threads=threads or self.ctx.settings.workers, worker_timeout=100
        )
        self._worker.start()

    def stop(self) -> None:
        """Stop the worker threads at their next safe point; unfinished work stays stored.

        Items stop between stages (a transcription between two segments), so the wait
        is short, and no native decoder is torn down mid-call at interpreter exit.
        """
        self.ctx.stopping.set()
        if self._worker is not None:
            self._worker.stop(timeout=STOP_TIMEOUT_MS)
            self._worker = None
        self.broker.close()

    def recover(self) -> int:
        """Re-enqueue every unfinished job and export; returns how many."""
        with self.ctx.db.session() as s:
            jobs = s.scalars(select(Job.id).where(Job.status.not_in(TERMINAL_JOB))).all()
            exports = s.scalars(
                select(Export.id).where(Export.status.in_(("pending", "processing")))
            ).all()
        for job_pk in jobs:
            self.start_job.send(job_pk)
        for export_pk in exports:
            self.export.send(export_pk)
        if jobs or exports:
            log.info("recovered %d jobs and %d exports", len(jobs), len(exports))
        return len(jobs) + len(exports)
