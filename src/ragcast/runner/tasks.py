"""The bodies of the pipeline actors: start a job, process one item, write an export.

They are plain functions of a :class:`~ragcast.context.Context`, so the embedded
runner and distributed workers run exactly the same code. Everything they do is
idempotent: a message delivered twice, or replayed after a crash, resumes from the
checkpoints in the store.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from ragcast.context import Context
from ragcast.errors import Interrupted, ItemError, TransientError
from ragcast.notify.outbox import item_failed, job_closed
from ragcast.pipeline.progress import (
    TERMINAL_ITEM,
    finalize_job,
    progress_event,
    refresh_job,
    terminal_event,
)
from ragcast.pipeline.stages import ACTIVE, ORDER, ItemStages, job_stages
from ragcast.store.models import Item, Job, User

log = logging.getLogger(__name__)

#: enqueue(item_id, stage): run ``stage`` of an item next
Enqueue = Callable[[int, str], None]
#: defer(job_pk): try to start a job again later
Defer = Callable[[int], None]


def start_job(ctx: Context, job_pk: int, enqueue: Enqueue, *, defer: Defer | None = None) -> None:
    """Move a job to ``processing`` and enqueue the next stage of each unfinished item.

    With a per-user limit on active jobs, a job over the limit stays ``pending`` and
    ``defer`` asks for this call again later.
    """
    with ctx.db.session() as s:
        job = s.get(Job, job_pk)
        if job is None or job.finished_at is not None:
            return
        event: dict[str, Any] | None = None
        listing = job.input_method == "channel" and not job.items and job.status != "cancelled"
        if job.status == "pending":
            if not _may_start(ctx, s, job):
                if defer is not None:
                    defer(job_pk)
                return
            # Claimed in the same transaction as the check, under the user's row lock,
            # so no other worker can start one more of this user's jobs in between.
            job.status = "initializing"
            job.stage = "Listing the channel" if listing else "Initializing"
            s.flush()
            ctx.bus.publish(job.id, progress_event(job))
    if listing and not _resolve(ctx, job_pk):
        return
    with ctx.db.session() as s:
        job = s.get(Job, job_pk)
        assert job is not None
        # Conditional: a cancel committed since this job was read must not be overwritten.
        started = s.execute(
            update(Job)
            .where(Job.id == job_pk, Job.status != "cancelled")
            .values(
                status="processing",
                started_at=func.coalesce(Job.started_at, datetime.now(UTC)),
            )
            .execution_options(synchronize_session=False)
        )
        s.refresh(job)
        if getattr(started, "rowcount", 0):
            refresh_job(s, job)
            event = progress_event(job)
        # Items of a cancelled job cancel themselves at their next stage check.
        pending = [(i.id, i.stage) for i in job.items if i.status not in TERMINAL_ITEM]
        plan = job_stages(job)
    if event is not None:
        ctx.bus.publish(job_pk, event)
    for item_id, finished in pending:
        enqueue(item_id, next_stage(finished, plan) or ORDER[-1])
    if not pending:
        _close(ctx, job_pk)


def _resolve(ctx: Context, job_pk: int) -> bool:
    """List a channel job's items; on a permanent failure the job fails with the reason."""
    from ragcast.pipeline.resolve import resolve_channel

    try:
        resolve_channel(ctx, job_pk)
    except (ItemError, TransientError) as exc:  # the listing already retried with backoff
        with ctx.db.session() as s:
            job = s.get(Job, job_pk, with_for_update=True)
            assert job is not None
            if job.finished_at is not None:
                return False  # closed already (cancelled, or a redelivered start)
            job.status = "failed"
            job.error = f"Processing failed: could not list the channel: {exc.message}"
            job.stage = "Processing failed"
            job.finished_at = datetime.now(UTC)
            job_closed(s, job)  # job.failed, committed with the failure
            event = terminal_event(job)
        ctx.bus.publish(job_pk, event)
        return False
    return True


def _may_start(ctx: Context, s: Session, job: Job) -> bool:
    """Whether the user is under their limit of active jobs (the user row is locked)."""
    limit = ctx.settings.max_active_jobs_per_user
    if limit <= 0:
        return True
    s.execute(select(User.id).where(User.id == job.user_id).with_for_update())
    active = s.scalar(
        select(func.count(Job.id)).where(
            Job.user_id == job.user_id,
            Job.status.in_(("initializing", "processing")),
            Job.finished_at.is_(None),
        )
    )
    return int(active or 0) < limit


def next_stage(finished: str, plan: list[str] = ORDER) -> str | None:
    """The stage of ``plan`` (a job's stages) after ``finished``; None after the last."""
    done = ORDER.index(finished)
    return next((stage for stage in plan if ORDER.index(stage) > done), None)


def run_stage(
    ctx: Context, item_id: int, stage: str, enqueue: Enqueue, *, last_attempt: bool = True
) -> None:
    """Run one stage of an item, then enqueue the next; the item fails alone on errors.

    A message for a stage already finished (a redelivery) does nothing. A
    :class:`TransientError` is re-raised for the broker to retry unless this is the
    last attempt, after which the item is failed with the reason.
    """
    with ctx.db.session() as s:
        item = s.get(Item, item_id)
        if item is None or item.status in TERMINAL_ITEM:
            return
        if ORDER.index(item.stage) >= ORDER.index(stage):
            return
        job_pk = item.job_pk
        plan = job_stages(item.job)
        item.status = "processing"
        item.attempts += 1
    started = time.perf_counter()
    try:
        try:
            ran = _run_stage(ctx, ItemStages(ctx), item_id, stage)
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
        ran = False
    except ItemError as exc:
        _fail(ctx, item_id, exc.message)
        ran = False
    except Exception as exc:
        log.exception("item %s failed", item_id)
        _fail(ctx, item_id, f"internal error: {type(exc).__name__}: {exc}"[:500])
        ran = False
    elapsed = time.perf_counter() - started
    ctx.metrics.observe_stage(stage, elapsed, ok=ran)
    log.info("item %s: %s finished in %.2fs (ok=%s)", item_id, ACTIVE[stage], elapsed, ran)
    following = next_stage(stage, plan) if ran else None
    if following is not None:
        enqueue(item_id, following)
    else:
        _close(ctx, job_pk)


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
    log.info("item %s: %s started", item_id, ACTIVE[stage])
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
        failed = s.execute(
            update(Item)
            .where(Item.id == item_id, Item.status.not_in(TERMINAL_ITEM))
            .values(status="failed", error=reason)
        )
        item = s.get(Item, item_id)
        assert item is not None
        s.refresh(item)
        if getattr(failed, "rowcount", 0):  # not again for an item already finished
            item_failed(s, item, reason)
        refresh_job(s, item.job)
        event = progress_event(item.job, item)
        job_pk = item.job_pk
    ctx.bus.publish(job_pk, event)


def _close(ctx: Context, job_pk: int) -> None:
    with ctx.db.session() as s:
        job = s.get(Job, job_pk)
        if job is None or not finalize_job(s, job):
            return
        job_closed(s, job)  # in the closing transaction: sent exactly when the close commits
        event = terminal_event(job)
    ctx.bus.publish(job_pk, event)
