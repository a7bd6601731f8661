"""What a stage run ends with: items finished, failed or waiting out an outage; jobs closed.

Used by the stage runner (:mod:`ragcast.runner.tasks`) and the reconciler.
"""

from __future__ import annotations

import errno
import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from ragcast.context import Context
from ragcast.errors import RagcastError, redact_paths
from ragcast.notify.outbox import item_failed, job_closed
from ragcast.pipeline import retention
from ragcast.pipeline.progress import (
    TERMINAL_ITEM,
    finalize_job,
    progress_event,
    refresh_job,
    terminal_event,
)
from ragcast.pipeline.stages import ACTIVE, BackendUnavailable
from ragcast.store.models import Item, Job

log = logging.getLogger("ragcast.runner.tasks")  # one logger for the stage runner's lines


@dataclass
class Outcome:
    """What a stage message did: items that finished it, failed, or go to a retry alone."""

    done: list[tuple[int, str, str | None]] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)
    retry: list[int] = field(default_factory=list)


class Superseded(RagcastError):
    """A concurrent run of the same items recorded the stage first; this run's work is
    rolled back instead of being counted twice."""


def outage(exc: BaseException) -> BackendUnavailable | None:
    """``exc`` as an outage of a service the pipeline runs on (the job store, the vector
    database, the data dir's disk), or None when it is something else."""
    if isinstance(exc, BackendUnavailable):
        return exc
    if isinstance(exc, OperationalError | InterfaceError) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    ):
        first = str(getattr(exc, "orig", exc) or exc).strip().splitlines()
        return BackendUnavailable(f"job store unavailable: {first[0] if first else exc}"[:300])
    full = isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
    if full or "No space left on device" in str(exc) or "disk is full" in str(exc):
        return BackendUnavailable("no space left on the data dir's disk")
    return None


def wait_out(exc: Exception, ids: list[int], last_attempt: bool) -> None:
    """Handle an outage around a stage: raise it for the broker to retry unless this is
    the last attempt; then leave the items as they are (re-raising what is no outage)."""
    down = outage(exc)
    if down is None:
        raise exc
    if not last_attempt:
        log.warning("items %s: %s; will retry", ids, down.message)
        if down is exc:
            raise
        raise down from exc
    log.warning(
        "items %s: %s; they keep their last finished stage and resume when it is back "
        "(the reconciler sends them again)",
        ids,
        down.message,
    )


def observe(ctx: Context, stage: str, elapsed: float, out: Outcome) -> None:
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


def fail_items(ctx: Context, failures: dict[int, str]) -> None:
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


def close_job(ctx: Context, job_pk: int) -> None:
    """Close a job whose items are all finished, with the retention of its recordings:
    decided in the closing transaction (so a finished job's media answer as kept), their
    files deleted after it commits (ragcast.pipeline.retention)."""
    plan = _planned_retention(ctx, job_pk)
    with ctx.db.session() as s:
        job = s.get(Job, job_pk)
        if job is None or not finalize_job(s, job):
            return
        retention.record(s, plan)
        job_closed(s, job)  # in the closing transaction: sent exactly when the close commits
        event = terminal_event(job)
    retention.discard(ctx.settings, plan.steps)
    if plan.waited:  # another job using a recording may have closed since it was planned
        retention.retain_job(ctx, job_pk)
    ctx.bus.publish(job_pk, event)


def _planned_retention(ctx: Context, job_pk: int) -> retention.RetentionPlan:
    """The retention of the job's recordings when its items are all finished, with the
    renditions it keeps made before the close (ffmpeg holds no transaction open)."""
    try:
        with ctx.db.session() as s:
            busy = s.scalar(
                select(Item.id)
                .where(Item.job_pk == job_pk, Item.status.not_in(TERMINAL_ITEM))
                .limit(1)
            )
            job = s.get(Job, job_pk)
            if busy is not None or job is None or job.finished_at is not None:
                return retention.RetentionPlan()
            plan = retention.plan_retention(s, ctx.settings, job_pk, closing=True)
        return retention.prepare(ctx.settings, plan)
    except Exception as exc:
        if outage(exc) is not None:
            raise
        log.exception("job %s: media retention not planned; decided at the next start", job_pk)
        return retention.RetentionPlan()
