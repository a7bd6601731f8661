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
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from ragcast.context import Context
from ragcast.errors import (
    Interrupted,
    ItemError,
    TransientError,
    internal_reason,
)
from ragcast.notify.outbox import job_closed
from ragcast.pipeline.progress import (
    TERMINAL_ITEM,
    EventThrottle,
    advance_job,
    progress_event,
    refresh_job,
    share,
    terminal_event,
)
from ragcast.pipeline.stages import ACTIVE, ORDER, BackendUnavailable, ItemStages, job_stages
from ragcast.runner.outcomes import (
    Outcome,
    Superseded,
    close_job,
    fail_items,
    observe,
    outage,
    wait_out,
)
from ragcast.store.models import Item, Job, User, utcnow

__all__ = ["Outcome", "Superseded", "close_job", "dispatch", "outage", "run_stage", "start_job"]

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
            # Conditional too: a cancel committed since the job was read stays.
            claimed = s.execute(
                update(Job)
                .where(Job.id == job_pk, Job.status == "pending")
                .values(
                    status="initializing",
                    stage="Listing the channel" if listing else "Initializing",
                )
                .execution_options(synchronize_session=False)
            )
            s.refresh(job)
            # Cancelled meanwhile: its items cancel themselves below and close the job.
            if getattr(claimed, "rowcount", 0):
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
        close_job(ctx, job_pk)


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
    An outage of a service the pipeline runs on (:func:`outage`) fails nothing: after
    the last retry the items keep their last finished stage and the reconciler sends
    them again once the service is back.
    """
    ids = [item_ids] if isinstance(item_ids, int) else list(item_ids)
    try:
        claim = _claim(ctx, ids, stage)
    except Exception as exc:
        wait_out(exc, ids, last_attempt)
        return
    if claim is None:
        return
    started = time.perf_counter()
    out = _attempt(ctx, claim, stage, enqueue, last_attempt=last_attempt)
    if out is None:
        return
    elapsed = time.perf_counter() - started
    observe(ctx, stage, elapsed, out)
    if out.failed:
        fail_items(ctx, out.failed)
    for item_id in out.retry:
        enqueue([item_id], stage)
    following = next_stage(stage, claim.plan)
    if following is not None:
        dispatch(
            ((i, following, st, ct) for i, st, ct in out.done), enqueue, ctx.settings.batch_items
        )
    if following is None or out.failed:
        close_job(ctx, claim.job_pk)


def _attempt(
    ctx: Context, claim: Claim, stage: str, enqueue: Enqueue, *, last_attempt: bool
) -> Outcome | None:
    """Run the claimed stage; its outcome, or None when there is nothing more to do here
    (stopped for shutdown, recorded by a concurrent run, waiting out an outage)."""
    try:
        try:
            return _run_claimed(ctx, claim, stage)
        except IntegrityError as exc:  # a concurrent run of these items stored first
            raise TransientError("a concurrent run of these items stored its result first") from exc
        except Exception as exc:
            down = outage(exc)
            if down is None or down is exc:
                raise
            raise down from exc
    except Interrupted:
        log.info("items %s: stopped for shutdown; they resume at the next start", claim.ids)
    except Superseded:
        log.info("items %s: %s already recorded by a concurrent run", claim.ids, stage)
        if len(claim.ids) > 1:  # the others of the batch still need it: run them again
            enqueue(claim.ids, stage)
    except BackendUnavailable as exc:
        wait_out(exc, claim.ids, last_attempt)
    except TransientError as exc:
        if not last_attempt:
            log.warning("items %s: transient failure, will retry: %s", claim.ids, exc)
            raise
        return Outcome(failed=dict.fromkeys(claim.ids, f"{exc.message} (gave up after retries)"))
    except ItemError as exc:
        return Outcome(failed=dict.fromkeys(claim.ids, exc.message))
    except Exception as exc:
        log.exception("items %s failed", claim.ids)
        return Outcome(failed=dict.fromkeys(claim.ids, internal_reason(exc)))
    return None


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
        events: list[dict[str, Any]] = []
        if job.status == "cancelled":
            for item in items:
                item.status = "cancelled"
                item.error = "cancelled by user"
            refresh_job(s, job)
        else:
            items = _take(s, items, stage)
            if not items:
                return None
            if len(items) == 1:  # an item alone is heavy work: say what it is doing
                events.append(progress_event(job, items[0]))
                events[0]["item"]["stage"] = ACTIVE[stage]
                log.info("item %s: %s started", items[0].id, ACTIVE[stage])
        claim = Claim(job.id, job_stages(job), [i.id for i in items])
    for event in events:
        ctx.bus.publish(claim.job_pk, event)
    if job.status == "cancelled":
        close_job(ctx, claim.job_pk)
        return None
    return claim


def _take(s: Session, items: list[Item], stage: str) -> list[Item]:
    """Mark the items processing by one conditional update: only those still unfinished
    and short of ``stage`` (a concurrent run that finished them meanwhile wins; on
    PostgreSQL the update waits for it), so a finished item never goes back."""
    taken = set(
        s.scalars(
            update(Item)
            .where(
                Item.id.in_([i.id for i in items]),
                Item.status.not_in(TERMINAL_ITEM),
                Item.stage.in_(ORDER[: ORDER.index(stage)]),
            )
            .values(status="processing", attempts=Item.attempts + 1, updated_at=utcnow())
            .returning(Item.id)
            .execution_options(synchronize_session=False)
        )
    )
    kept = [i for i in items if i.id in taken]
    for item in kept:
        set_committed_value(item, "status", "processing")
    return kept


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
        was = {i.id: i.stage for i in items}
        done, out = _work(s, ItemStages(ctx, incremental=len(items) == 1), items, job, stage)
        _record(s, done, was, stage)
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


def _record(s: Session, done: list[Item], was: dict[int, str], stage: str) -> None:
    """Record ``stage`` as finished for ``done`` items, each by an update conditional on the
    stage it had when this run read it: should a concurrent run of the same items (a
    resent message racing the first) have recorded it first, this run is
    :class:`Superseded` and rolled back, so nothing is counted twice."""
    values: dict[str, str] = {"stage": stage}
    if stage == ORDER[-1]:
        values["status"] = "completed"
    for item in done:
        changed = s.execute(
            update(Item)
            .where(Item.id == item.id, Item.stage == was[item.id], Item.status == "processing")
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if not getattr(changed, "rowcount", 0):
            raise Superseded(f"item {item.id}: {stage} was recorded by a concurrent run")
        for key, value in values.items():
            set_committed_value(item, key, value)


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
        except BackendUnavailable:
            raise  # the whole message waits for the service, not this item alone
        except TransientError as exc:
            log.warning("item %s: transient failure, retried alone: %s", item.id, exc)
            out.retry.append(item.id)
        except (Interrupted, OperationalError):
            raise
        except Exception as exc:
            if outage(exc) is not None:
                raise
            log.exception("item %s failed", item.id)
            out.failed[item.id] = internal_reason(exc)
        else:
            done.append(item)
    return done, out
