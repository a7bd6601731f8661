"""The bodies of the pipeline actors: start a job, process one item, write an export.

They are plain functions of a :class:`~ragcast.context.Context`, so the embedded
runner and distributed workers run exactly the same code. Everything they do is
idempotent: a message delivered twice, or replayed after a crash, resumes from the
checkpoints in the store.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import update
from sqlalchemy.exc import OperationalError

from ragcast.context import Context
from ragcast.errors import Interrupted, ItemError, TransientError
from ragcast.pipeline.progress import (
    TERMINAL_ITEM,
    finalize_job,
    progress_event,
    refresh_job,
    terminal_event,
)
from ragcast.pipeline.stages import ACTIVE, ORDER, ItemStages
from ragcast.store.models import Item, Job

log = logging.getLogger(__name__)

Enqueue = Callable[[int], None]


def start_job(ctx: Context, job_pk: int, enqueue_item: Enqueue) -> None:
    """Move a job to ``processing`` and enqueue each unfinished item."""
    with ctx.db.session() as s:
        job = s.get(Job, job_pk)
        if job is None or job.finished_at is not None:
            return
        if job.status == "cancelled":
            # Items still queued cancel themselves at their next stage check.
            pending = [i.id for i in job.items if i.status not in TERMINAL_ITEM]
            event = None
        elif job.status == "pending":
            job.status = "initializing"
            job.stage = "Initializing"
            s.flush()
            ctx.bus.publish(job.id, progress_event(job))
        if job.status != "cancelled":
            job.status = "processing"
            job.started_at = job.started_at or datetime.now(UTC)
            refresh_job(s, job)
            pending = [i.id for i in job.items if i.status not in TERMINAL_ITEM]
            event = progress_event(job)
    if event is not None:
        ctx.bus.publish(job_pk, event)
    for item_id in pending:
        enqueue_item(item_id)
    if not pending:
        _close(ctx, job_pk)


def process_item(ctx: Context, item_id: int, *, last_attempt: bool = True) -> None:
    """Run an item's remaining stages; it fails alone with a readable reason.

    A :class:`TransientError` is re-raised for the broker to retry unless this is the
    last attempt, after which the item is failed with the reason.
    """
    stages = ItemStages(ctx)
    with ctx.db.session() as s:
        item = s.get(Item, item_id)
        if item is None or item.status in TERMINAL_ITEM:
            return
        job_pk = item.job_pk
        item.status = "processing"
        item.attempts += 1
    try:
        try:
            for stage in ORDER[ORDER.index(_finished(ctx, item_id)) + 1 :]:
                if not _run_stage(ctx, stages, item_id, stage):
                    break
        except OperationalError as exc:  # a locked or unreachable store passes
            raise TransientError(f"job store unavailable: {exc.orig}") from exc
    except Interrupted:
        log.info("item %s: stopped for shutdown; it resumes at the next start", item_id)
        return
    except TransientError as exc:
        if not last_attempt:
            log.warning("item %s: transient failure, will retry: %s", item_id, exc)
            raise
        _fail(ctx, item_id, f"{exc.message} (gave up after retries)")
    except ItemError as exc:
        _fail(ctx, item_id, exc.message)
    except Exception as exc:
        log.exception("item %s failed", item_id)
        _fail(ctx, item_id, f"internal error: {type(exc).__name__}: {exc}"[:500])
    _close(ctx, job_pk)


def _finished(ctx: Context, item_id: int) -> str:
    with ctx.db.session() as s:
        item = s.get(Item, item_id)
        return item.stage if item is not None else ORDER[-1]


def _run_stage(ctx: Context, stages: ItemStages, item_id: int, stage: str) -> bool:
    """Run one stage; False when the job was cancelled before it could start."""
    if ctx.stopping.is_set():
        raise Interrupted("the process is shutting down")
    with ctx.db.session() as s:
        item = s.get(Item, item_id)
        assert item is not None
        job = item.job
        if job.status == "cancelled":
            item.status = "cancelled"
            item.error = "cancelled by user"
            return False
        event = progress_event(job, item)
        event["item"]["stage"] = ACTIVE[stage]
    ctx.bus.publish(job.id, event)
    with ctx.db.session() as s:
        item = s.get(Item, item_id)
        assert item is not None
        job = item.job
        stages.runner(stage)(s, item, job)
        item.stage = stage
        if stage == ORDER[-1]:
            item.status = "completed"
        refresh_job(s, job)
        event = progress_event(job, item)
    ctx.bus.publish(job.id, event)
    return True


def _fail(ctx: Context, item_id: int, reason: str) -> None:
    with ctx.db.session() as s:
        s.execute(
            update(Item)
            .where(Item.id == item_id, Item.status.not_in(TERMINAL_ITEM))
            .values(status="failed", error=reason)
        )
        item = s.get(Item, item_id)
        assert item is not None
        s.refresh(item)
        refresh_job(s, item.job)
        event = progress_event(item.job, item)
        job_pk = item.job_pk
    ctx.bus.publish(job_pk, event)


def _close(ctx: Context, job_pk: int) -> None:
    with ctx.db.session() as s:
        job = s.get(Job, job_pk)
        if job is None or not finalize_job(s, job):
            return
        event = terminal_event(job)
    ctx.bus.publish(job_pk, event)
