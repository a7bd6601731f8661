"""The bodies of the pipeline actors: start a job, run a stage of items, write an export.

They are plain functions of a :class:`~ragcast.context.Context`, so the embedded
runner and distributed workers run exactly the same code. Everything they do is
idempotent: a message delivered twice, or replayed after a crash, resumes from the
checkpoints in the store.

A stage message names one item or a batch of them. Heavy work (a platform download,
speech recognition, diarization) gets a message per item, so workers share it out;
light items (documents, captions) travel through the remaining stages together, up to
``batch_items`` per message: one transaction per stage for the batch, embeddings in the
model's batches across items, one vector upsert, and coalesced progress events.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from ragcast.context import Context
from ragcast.errors import (
    Interrupted,
    ItemError,
    TransientError,
    internal_reason,
    redact_paths,
)
from ragcast.notify.outbox import item_failed, job_closed
from ragcast.pipeline.progress import (
    TERMINAL_ITEM,
    EventThrottle,
    advance_job,
    finalize_job,
    progress_event,
    refresh_job,
    share,
    terminal_event,
)
from ragcast.pipeline.stages import ACTIVE, ORDER, ItemStages, job_stages
from ragcast.store.models import Item, Job, User, utcnow

log = logging.getLogger(__name__)

#: enqueue(item_ids, stage): run ``stage`` of these items next, in one message
Enqueue = Callable[[list[int], str], None]
#: defer(job_pk): try to start a job again later
Defer = Callable[[int], None]

#: coalesces the progress events of batches, per job, in this process
THROTTLE = EventThrottle()


def runs_alone(stage: str, source_type: str, content_type: str | None) -> bool:
    """Whether producing ``stage`` is heavy work for an item, worth a message of its own."""
    if stage == "fetched":
        return source_type != "upload"  # a download from the platform
    if stage in ("transcribed", "diarized"):
        return content_type is None or content_type.startswith(("audio/", "video/"))
    return False


def dispatch(
    steps: Iterable[tuple[int, str, str, str | None]], enqueue: Enqueue, batch: int
) -> None:
    """Send the messages for ``(item id, stage, source type, content type)`` steps: heavy
    ones alone, light ones ``batch`` at a time per stage."""
    light: dict[str, list[int]] = {}
    for item_id, stage, source_type, content_type in steps:
        if runs_alone(stage, source_type, content_type):
            enqueue([item_id], stage)
        else:
            light.setdefault(stage, []).append(item_id)
    for stage, ids in light.items():
        for n in range(0, len(ids), max(batch, 1)):
            enqueue(ids[n : n + batch], stage)


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
        plan = job_stages(job)
        pending = [
            (r.id, next_stage(r.stage, plan) or ORDER[-1], r.source_type, r.content_type)
            for r in s.execute(
                select(Item.id, Item.stage, Item.source_type, Item.content_type)
                .where(Item.job_pk == job_pk, Item.status.not_in(TERMINAL_ITEM))
                .order_by(Item.index)
            )
        ]
    if event is not None:
        ctx.bus.publish(job_pk, event)
    dispatch(pending, enqueue, ctx.settings.batch_items)
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


@dataclass
class Claim:
    """Items of one job claimed for a stage."""

    job_pk: int
    plan: list[str]
    ids: list[int]


@dataclass
class Outcome:
    """What a stage message did: items that finished it, failed, or go to a retry alone."""

    done: list[tuple[int, str, str | None]] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)
    retry: list[int] = field(default_factory=list)


def run_stage(
    ctx: Context,
    item_ids: int | Sequence[int],
    stage: str,
    enqueue: Enqueue,
    *,
    last_attempt: bool = True,
) -> None:
    """Run one stage of items, then enqueue the next; an item fails alone on its errors.

    Items that already finished the stage (a redelivery) are skipped. A
    :class:`TransientError` of the message's work is re-raised for the broker to retry
    unless this is the last attempt, after which its items fail with the reason; in a
    batch, an item's own transient failure sends it to a retry in a message of its own.
    """
    ids = [item_ids] if isinstance(item_ids, int) else list(item_ids)
    claim = _claim(ctx, ids, stage)
    if claim is None:
        return
    started = time.perf_counter()
    try:
        try:
            out = _run_claimed(ctx, claim, stage)
        except OperationalError as exc:  # a locked or unreachable store passes
            raise TransientError(f"job store unavailable: {exc.orig}") from exc
    except Interrupted:
        log.info("items %s: stopped for shutdown; they resume at the next start", claim.ids)
        return
    except TransientError as exc:
        if not last_attempt:
            log.warning("items %s: transient failure, will retry: %s", claim.ids, exc)
            raise
        out = Outcome(failed=dict.fromkeys(claim.ids, f"{exc.message} (gave up after retries)"))
    except ItemError as exc:
        out = Outcome(failed=dict.fromkeys(claim.ids, exc.message))
    except Exception as exc:
        log.exception("items %s failed", claim.ids)
        out = Outcome(failed=dict.fromkeys(claim.ids, internal_reason(exc)))
    elapsed = time.perf_counter() - started
    _observe(ctx, stage, elapsed, out)
    if out.failed:
        _fail(ctx, out.failed)
    for item_id in out.retry:
        enqueue([item_id], stage)
    following = next_stage(stage, claim.plan)
    if following is not None:
        dispatch(
            ((i, following, st, ct) for i, st, ct in out.done), enqueue, ctx.settings.batch_items
        )
    if following is None or out.failed:
        _close(ctx, claim.job_pk)


def _observe(ctx: Context, stage: str, elapsed: float, out: Outcome) -> None:
    if out.done:
        ctx.metrics.observe_stage(stage, elapsed, ok=True, runs=len(out.done))
    if out.failed:
        ctx.metrics.observe_stage(
            stage, 0.0 if out.done else elapsed, ok=False, runs=len(out.failed)
        )
    log.info(
        "%s: %d items finished, %d failed in %.2fs",
        ACTIVE[stage],
        len(out.done),
        len(out.failed),
        elapsed,
    )


def _due(items: Iterable[Item], stage: str) -> list[Item]:
    """The items that have yet to produce ``stage``."""
    at = ORDER.index(stage)
    return [i for i in items if i.status not in TERMINAL_ITEM and ORDER.index(i.stage) < at]


def _claim(ctx: Context, item_ids: list[int], stage: str) -> Claim | None:
    """Mark the items due for ``stage`` as processing; cancel them if their job was."""
    with ctx.db.session() as s:
        items = _due(
            s.scalars(select(Item).where(Item.id.in_(item_ids)).order_by(Item.index)), stage
        )
        if not items:
            return None
        job = items[0].job
        claim = Claim(job.id, job_stages(job), [i.id for i in items])
        events: list[dict[str, Any]] = []
        if job.status == "cancelled":
            for item in items:
                item.status = "cancelled"
                item.error = "cancelled by user"
            refresh_job(s, job)
        else:
            for item in items:
                item.status = "processing"
                item.attempts += 1
            if len(items) == 1:  # an item alone is heavy work: say what it is doing
                events.append(progress_event(job, items[0]))
                events[0]["item"]["stage"] = ACTIVE[stage]
                log.info("item %s: %s started", items[0].id, ACTIVE[stage])
    for event in events:
        ctx.bus.publish(claim.job_pk, event)
    if job.status == "cancelled":
        _close(ctx, claim.job_pk)
        return None
    return claim


def _run_claimed(ctx: Context, claim: Claim, stage: str) -> Outcome:
    """Produce ``stage`` for the claimed items in one transaction, with the job's counters."""
    if ctx.stopping.is_set():
        raise Interrupted("the process is shutting down")
    with ctx.db.session() as s:
        if len(claim.ids) > 1:
            # Write first: the batch's transaction holds the store's write lock from here
            # (SQLite), so its savepoints never need to upgrade a read to a write, which
            # fails at once when another writer committed meanwhile. An item alone does
            # not: its heavy work must not hold the lock.
            s.execute(
                update(Item)
                .where(Item.id.in_(claim.ids))
                .values(updated_at=utcnow())
                .execution_options(synchronize_session=False)
            )
        job = s.get(Job, claim.job_pk)
        assert job is not None
        query = select(Item).where(Item.id.in_(claim.ids)).order_by(Item.index)
        items = _due(s.scalars(query.with_for_update()), stage)
        before = {i.id: share(i.status, i.stage) for i in items}
        done, out = _work(s, ItemStages(ctx, incremental=len(items) == 1), items, job, stage)
        for item in done:
            item.stage = stage
            if stage == ORDER[-1]:
                item.status = "completed"
        finished = [i for i in done if i.status in TERMINAL_ITEM]
        advance_job(
            s,
            job,
            work=sum(share(i.status, i.stage) - before[i.id] for i in done),
            done=len(finished),
            embeddings=sum(i.chunk_count for i in done) if stage == "embedded" else 0,
        )
        events = [progress_event(job, i) for i in finished]
        if done and not events and (len(items) == 1 or THROTTLE.due(job.id)):
            events.append(progress_event(job, done[-1]))
        out.done = [(i.id, i.source_type, i.content_type) for i in done]
    for event in events:
        ctx.bus.publish(claim.job_pk, event)
    return out


def _work(
    s: Session, stages: ItemStages, items: list[Item], job: Job, stage: str
) -> tuple[list[Item], Outcome]:
    """Run the stage for each item: alone as one piece of work (its errors are the
    message's); in a batch together where the stage can, else each in a savepoint."""
    out = Outcome()
    if len(items) <= 1:
        for item in items:
            stages.runner(stage)(s, item, job)
        return items, out
    together = stages.batch_runner(stage)
    if together is not None:
        try:
            with s.begin_nested():
                together(s, items, job)
            return items, out
        except ItemError as exc:  # one item spoils the batch: find it, one by one
            log.info("%s of %d items together failed (%s); one by one", stage, len(items), exc)
    done: list[Item] = []
    for item in items:
        try:
            with s.begin_nested():
                stages.runner(stage)(s, item, job)
        except ItemError as exc:
            out.failed[item.id] = exc.message
        except TransientError as exc:
            log.warning("item %s: transient failure, retried alone: %s", item.id, exc)
            out.retry.append(item.id)
        except (Interrupted, OperationalError):
            raise
        except Exception as exc:
            log.exception("item %s failed", item.id)
            out.failed[item.id] = internal_reason(exc)
        else:
            done.append(item)
    return done, out


def _fail(ctx: Context, failures: dict[int, str]) -> None:
    """Fail items with their reasons (an item finished meanwhile stays as it is)."""
    events: list[dict[str, Any]] = []
    job_pk: int | None = None
    with ctx.db.session() as s:
        failed: list[Item] = []
        for item_id, raw in failures.items():
            reason = redact_paths(raw)  # reasons reach users and webhooks: no server paths
            changed = s.execute(
                update(Item)
                .where(Item.id == item_id, Item.status.not_in(TERMINAL_ITEM))
                .values(status="failed", error=reason)
                .execution_options(synchronize_session=False)
            )
            item = s.get(Item, item_id)
            if item is None:
                continue
            s.refresh(item)
            if getattr(changed, "rowcount", 0):  # not again for an item already finished
                item_failed(s, item, reason)
            failed.append(item)
        if failed:
            job = failed[0].job
            job_pk = job.id
            refresh_job(s, job)
            events = [progress_event(job, i) for i in failed]
    for event in events:
        assert job_pk is not None
        ctx.bus.publish(job_pk, event)


def _close(ctx: Context, job_pk: int) -> None:
    with ctx.db.session() as s:
        job = s.get(Job, job_pk)
        if job is None or not finalize_job(s, job):
            return
        job_closed(s, job)  # in the closing transaction: sent exactly when the close commits
        event = terminal_event(job)
    ctx.bus.publish(job_pk, event)
