"""Dramatiq actors, the broker chosen by settings, and the worker runner.

The actors are declared per broker (not at import time) so a process builds its broker
from settings first. Each pipeline stage is its own actor on its own queue, so a fleet
can route transcription to GPU machines and fetching elsewhere
(``ragcast worker --queues ragcast.transcribe``).

- Embedded (no ``RAGCAST_BROKER_URL``): Dramatiq's ``StubBroker`` with worker threads in
  the API process; its messages live in memory, so :meth:`Runner.recover` re-enqueues
  unfinished work from the store at start-up.
- Distributed: ``redis://`` (``RedisBroker``, messages acknowledged after the work is
  stored, a dead worker's messages requeued after a short heartbeat timeout) or
  ``amqp://`` (``RabbitmqBroker``, unacknowledged messages return when the connection
  drops).

Wherever workers run, the :class:`~ragcast.runner.reconciler.Reconciler` runs with them:
work whose message the broker lost (a Redis restarted empty, a send during an outage) is
found in the store and sent again. A message that cannot be sent is therefore logged and
left to it, never raised into the stage that already stored its result.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import dramatiq
from dramatiq import Actor, Message
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
from ragcast.errors import TransientError
from ragcast.exports.job import run_export
from ragcast.pipeline.progress import TERMINAL_JOB
from ragcast.runner import tasks
from ragcast.runner.reconciler import ActiveWork, Held, Reconciler, held_work
from ragcast.settings import Settings
from ragcast.store.models import Export, Job

log = logging.getLogger(__name__)

QUEUE_JOBS = "ragcast.jobs"
QUEUE_EXPORTS = "ragcast.exports"
#: finished stage → the queue of the actor that produces it
STAGE_QUEUES = {
    "fetched": "ragcast.fetch",
    "transcribed": "ragcast.transcribe",
    "diarized": "ragcast.diarize",
    "chunked": "ragcast.embed",
    "embedded": "ragcast.embed",
    "indexed": "ragcast.index",
}
QUEUES = (QUEUE_JOBS, *dict.fromkeys(STAGE_QUEUES.values()), QUEUE_EXPORTS)
STOP_TIMEOUT_MS = 120_000
DEFER_MS = 1000


def _middleware(settings: Settings) -> list[Any]:
    # No TimeLimit: a three-hour recording must not be killed by a default limit.
    return [
        AgeLimit(),
        ShutdownNotifications(),
        Callbacks(),
        Pipelines(),
        Retries(
            max_retries=settings.max_retries,
            min_backoff=settings.retry_min_backoff_ms,
            max_backoff=5 * 60 * 1000,
        ),
        CurrentMessage(),
    ]


def make_broker(settings: Settings) -> dramatiq.Broker:
    """The broker ``RAGCAST_BROKER_URL`` names, or the in-process stub."""
    url = settings.broker_url
    middleware = _middleware(settings)
    if not url:
        return StubBroker(middleware=middleware)
    if url.startswith(("redis://", "rediss://", "unix://")):
        from dramatiq.brokers.redis import RedisBroker

        return RedisBroker(  # type: ignore[no-untyped-call]
            url=url,
            namespace=settings.broker_namespace,
            heartbeat_timeout=settings.broker_heartbeat_timeout_ms,
            # Dead workers' messages are requeued only during "maintenance"; Dramatiq's
            # default (0.1 % of commands) can leave them waiting for many minutes.
            maintenance_chance=settings.broker_maintenance_chance,
            middleware=middleware,
        )
    if url.startswith(("amqp://", "amqps://")):
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        return RabbitmqBroker(url=url, middleware=middleware)
    raise ValueError(f"RAGCAST_BROKER_URL must be redis:// or amqp://, not {url!r}")


def _last_attempt(max_retries: int) -> bool:
    message = CurrentMessage.get_current_message()
    if message is None:
        return True
    return int(message.options.get("retries", 0)) >= max_retries


class Runner:
    """The pipeline actors bound to one broker and one context."""

    def __init__(self, ctx: Context, broker: dramatiq.Broker | None = None) -> None:
        self.ctx = ctx
        self.broker = broker or make_broker(ctx.settings)
        self.embedded = isinstance(self.broker, StubBroker)
        self._worker: dramatiq.Worker | None = None
        #: what this process's actors run now: its heartbeat, for the reconciler
        self.active = ActiveWork()
        self.reconciler = Reconciler(ctx, self, self.active)
        max_retries = ctx.settings.max_retries
        active = self.active

        def start_job(job_pk: int) -> None:
            with active.holding("job", [job_pk]):
                tasks.start_job(ctx, job_pk, self.enqueue_stage, defer=self._defer_start)

        def export(export_pk: int) -> None:
            with active.holding("export", [export_pk]):
                run_export(ctx, export_pk)

        self.start_job = self._actor(start_job, "start_job", QUEUE_JOBS)
        self.export = self._actor(export, "run_export", QUEUE_EXPORTS)
        self.stages: dict[str, Actor[[int | list[int]], None]] = {}
        for stage, queue in STAGE_QUEUES.items():
            # A message names a list of items (or one item id, as earlier releases sent).
            def run(item_ids: int | list[int], stage: str = stage) -> None:
                held = [item_ids] if isinstance(item_ids, int) else item_ids
                try:
                    with active.holding("item", held):
                        tasks.run_stage(
                            ctx,
                            item_ids,
                            stage,
                            self.enqueue_stage,
                            last_attempt=_last_attempt(max_retries),
                        )
                except TransientError as exc:
                    # The provider said when to come back: retry no sooner than that.
                    delay = int(exc.retry_after * 1000) if exc.retry_after else None
                    raise dramatiq.Retry(exc.message, delay=delay) from exc

            self.stages[stage] = self._actor(run, f"stage_{stage}", queue)

    def _actor(self, fn: Callable[..., None], name: str, queue: str) -> Actor[..., None]:
        decorate = dramatiq.actor(actor_name=name, queue_name=queue, broker=self.broker)
        actor: Actor[..., None] = decorate(fn)
        return actor

    def enqueue_stage(self, item_ids: list[int], stage: str) -> None:
        """Send the message that runs ``stage`` of these items (left to the reconciler
        when the broker cannot take it)."""
        self._send(self.stages[stage], (item_ids,))

    def send_start(self, job_pk: int) -> None:
        """Send a job's ``start_job`` (left to the reconciler when the broker cannot)."""
        self._send(self.start_job, (job_pk,))

    def send_export(self, export_pk: int) -> None:
        """Send an export's ``run_export`` (left to the reconciler when the broker cannot)."""
        self._send(self.export, (export_pk,))

    def _defer_start(self, job_pk: int) -> None:
        self._send(self.start_job, (job_pk,), delay=DEFER_MS)

    def _send(
        self, actor: Actor[..., None], args: tuple[Any, ...], delay: int | None = None
    ) -> None:
        try:
            actor.send_with_options(args=args, delay=delay)
        except Exception as exc:  # the broker is down: the work stays stored, and is found
            log.warning(
                "could not send %s%s (%s: %s); the reconciler sends it again",
                actor.actor_name,
                args,
                type(exc).__name__,
                str(exc)[:200],
            )

    def start(self, threads: int | None = None, queues: Iterable[str] | None = None) -> None:
        """Start worker threads in this process, consuming ``queues`` (default: all)."""
        self.broker.emit_after("process_boot")
        self._worker = dramatiq.Worker(
            self.broker,
            queues=set(queues) if queues else None,
            worker_threads=threads or self.ctx.settings.workers,
            worker_timeout=100,
        )
        self._worker.start()
        self.reconciler.start()

    @property
    def running(self) -> bool:
        """Whether this process runs workers."""
        return self._worker is not None

    def stop(self) -> None:
        """Stop the worker threads at their next safe point; unfinished work stays stored.

        Items stop between stages (a transcription between two segments), so the wait
        is short, and no native decoder is torn down mid-call at interpreter exit.
        """
        self.ctx.stopping.set()
        if self._worker is not None:
            self._worker.stop(timeout=STOP_TIMEOUT_MS)
            self._worker = None
            self.reconciler.stop()
        self.broker.close()

    def queue_depths(self) -> dict[str, int]:
        """Messages waiting per queue, where the broker can tell."""
        depths: dict[str, int] = {}
        for queue in QUEUES:
            try:
                if isinstance(self.broker, StubBroker):
                    depths[queue] = self.broker.queues[queue].qsize()
                elif hasattr(self.broker, "client"):  # Redis
                    key = f"{self.ctx.settings.broker_namespace}:{queue}"
                    depths[queue] = int(self.broker.client.hlen(f"{key}.msgs"))
            except Exception:  # an unknown queue or an unreachable broker
                continue
        return depths

    def broker_ok(self) -> bool:
        """Whether the broker answers."""
        try:
            if hasattr(self.broker, "client"):
                return bool(self.broker.client.ping())
            if hasattr(self.broker, "connection"):
                return bool(self.broker.connection.is_open)
        except Exception:
            return False
        return True

    def held_messages(self) -> Held | None:
        """The items, jobs and exports that messages the broker holds name (waiting,
        delayed, or taken by a worker and not yet acknowledged); None when the broker
        cannot tell (RabbitMQ cannot be read without consuming)."""
        if isinstance(self.broker, StubBroker):
            raw = self._stub_messages()
        elif hasattr(self.broker, "client"):  # Redis
            raw = self._redis_messages(self.broker.client)
        else:
            return None
        return held_work((m.actor_name, tuple(m.args)) for m in raw)

    def _redis_messages(self, client: Any) -> list[Any]:
        # One MULTI: a message moving between queues (a delayed one coming due, a retry)
        # is seen in one of them. A message stays in its queue's hash until acknowledged.
        ns = self.ctx.settings.broker_namespace
        pipe = client.pipeline(transaction=True)
        for queue in QUEUES:
            pipe.hvals(f"{ns}:{queue}.DQ.msgs")
            pipe.hvals(f"{ns}:{queue}.msgs")
        return [Message.decode(raw) for values in pipe.execute() for raw in values]

    def _stub_messages(self) -> list[Any]:
        # The stub's queues hold encoded messages; this process's worker holds the
        # messages it took (prefetched, or delayed until due) as message proxies.
        found: list[Any] = []
        assert isinstance(self.broker, StubBroker)
        for q in list(self.broker.queues.values()):
            with q.mutex:
                found += [Message.decode(raw) for raw in list(q.queue)]
        worker = self._worker
        if worker is not None:
            buffers = [worker.work_queue, *(c.delay_queue for c in worker.consumers.values())]
            for buffer in buffers:
                with buffer.mutex:
                    found += [item.message for item in list(buffer.queue)]
        return found

    def recover(self) -> int:
        """Re-enqueue every unfinished job and export; returns how many."""
        with self.ctx.db.session() as s:
            jobs = s.scalars(select(Job.id).where(Job.status.not_in(TERMINAL_JOB))).all()
            cancelled = s.scalars(
                select(Job.id).where(Job.status == "cancelled", Job.finished_at.is_(None))
            ).all()
            exports = s.scalars(
                select(Export.id).where(Export.status.in_(("pending", "processing")))
            ).all()
        for job_pk in [*jobs, *cancelled]:
            self.start_job.send(job_pk)
        for export_pk in exports:
            self.export.send(export_pk)
        if jobs or exports:
            log.info("recovered %d jobs and %d exports", len(jobs), len(exports))
        return len(jobs) + len(exports)
