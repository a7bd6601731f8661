"""Job progress: derived from the items' finished stages, published as contract events."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from ragcast.pipeline.stages import ORDER, STAGES
from ragcast.store.models import Item, Job

TERMINAL_JOB = ("completed", "failed", "cancelled")
TERMINAL_ITEM = ("completed", "failed", "cancelled")


def item_share(item: Item) -> float:
    """How much of an item's work is done, 0..1."""
    return share(item.status, item.stage)


def share(status: str, stage: str) -> float:
    """How much of the work of an item in ``status`` after ``stage`` is done, 0..1."""
    if status in TERMINAL_ITEM:
        return 1.0
    return STAGES.get(stage, 0.0)


#: finished stages from which an item's chunks count as embeddings
_EMBEDDED = frozenset(ORDER[ORDER.index("embedded") :])


def refresh_job(s: Session, job: Job) -> None:
    """Recount progress, counters and stage text from the items, in one aggregate query.

    The job row is locked first, so a concurrent :func:`advance_job` (which adds to the
    same counters) lands either before this count or on top of it, never lost.
    ``progress`` is written only upwards, so concurrent workers and a recovered job can
    never make it go backwards.
    """
    s.execute(select(Job.id).where(Job.id == job.id).with_for_update())
    rows = s.execute(
        select(Item.status, Item.stage, func.count(Item.id), func.sum(Item.chunk_count))
        .where(Item.job_pk == job.id)
        .group_by(Item.status, Item.stage)
    ).all()
    total = sum(int(n) for _, _, n, _ in rows)
    job.total_content = total
    job.content_processed = sum(int(n) for status, _, n, _ in rows if status in TERMINAL_ITEM)
    job.work_done = sum(share(status, stage) * int(n) for status, stage, n, _ in rows)
    job.embeddings = sum(int(c or 0) for _, stage, _, c in rows if stage in _EMBEDDED)
    _write_progress(s, job)


def advance_job(s: Session, job: Job, work: float, done: int, embeddings: int) -> None:
    """Add one batch's progress to the job's counters (the batch's items moved in the same
    transaction), then its progress and stage text: no work that grows with the job."""
    if not (work or done or embeddings):
        return
    row = s.execute(
        update(Job)
        .where(Job.id == job.id)
        .values(
            work_done=Job.work_done + work,
            content_processed=Job.content_processed + done,
            embeddings=Job.embeddings + embeddings,
        )
        .returning(Job.work_done, Job.content_processed, Job.embeddings, Job.total_content)
        .execution_options(synchronize_session=False)
    ).one()
    job.work_done, job.content_processed, job.embeddings, job.total_content = row
    _write_progress(s, job)


def _write_progress(s: Session, job: Job) -> None:
    total = job.total_content or 1
    progress = round(100.0 * job.work_done / total, 1)
    if job.status not in TERMINAL_JOB:
        progress = min(progress, 99.9)
    s.execute(
        update(Job)
        .where(Job.id == job.id, Job.progress < progress)
        .values(progress=progress)
        .execution_options(synchronize_session=False)
    )
    if job.status == "processing":
        done = job.content_processed
        job.stage = f"Processing item {min(done + 1, job.total_content)}/{job.total_content}"
    s.flush()
    s.refresh(job, ["progress"])


class EventThrottle:
    """Coalesces a job's progress events: at most one per ``interval`` seconds per job in
    this process (events a client must see, such as an item finishing, are not asked)."""

    def __init__(self, interval: float = 0.25) -> None:
        self.interval = interval
        self._last: dict[int, float] = {}
        self._lock = threading.Lock()

    def due(self, job_pk: int) -> bool:
        """Whether a coalesced event for ``job_pk`` may go out now (and note that it does)."""
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(job_pk, -1e9) < self.interval:
                return False
            self._last[job_pk] = now
            if len(self._last) > 10_000:  # forget jobs not heard of for a while
                cutoff = now - 60.0
                self._last = {k: v for k, v in self._last.items() if v >= cutoff}
            return True


def progress_event(job: Job, item: Item | None = None) -> dict[str, Any]:
    """The contract's ``progress`` message (plus the item that moved, when one did)."""
    event: dict[str, Any] = {
        "type": "progress",
        "job_id": job.job_id,
        "progress": job.progress,
        "stage": job.stage,
        "contentProcessed": job.content_processed,
        "embeddings": job.embeddings,
        "status": job.status,
        "total_content": job.total_content,
    }
    if item is not None:
        event["item"] = {
            "index": item.index,
            "content_id": item.content_id,
            "title": item.title,
            "status": item.status,
            "stage": item.stage,
            "transcript_source": item.transcript_source,
            "error": item.error,
        }
    return event


def job_result(job: Job) -> dict[str, Any]:
    """The totals of a finished job."""
    return {
        "total_items": job.total_content,
        "completed_items": job.completed_items,
        "failed_items": job.failed_items,
        "processing_time": round(job.processing_time or 0.0, 3),
    }


def terminal_event(job: Job) -> dict[str, Any]:
    """The ``completed`` or ``error`` message of a finished job."""
    if job.status == "completed":
        return {
            "type": "completed",
            "job_id": job.job_id,
            "progress": 100,
            "stage": job.stage,
            "status": job.status,
            "result": job_result(job),
        }
    return {
        "type": "error",
        "job_id": job.job_id,
        "message": job.error or f"Processing {job.status}",
        "status": job.status,
        "result": job_result(job),
    }


def finalize_job(s: Session, job: Job) -> bool:
    """Close a job whose items are all finished; True if this call closed it.

    The status change is a conditional update so exactly one worker closes a job.
    """
    counts = dict(
        s.execute(
            select(Item.status, func.count(Item.id))
            .where(Item.job_pk == job.id)
            .group_by(Item.status)
        )
        .tuples()
        .all()
    )
    if any(status not in TERMINAL_ITEM for status in counts):
        return False
    total = sum(counts.values())
    completed = counts.get("completed", 0)
    failed = counts.get("failed", 0)
    now = datetime.now(UTC)
    started = job.started_at or job.created_at
    if started.tzinfo is None:
        started = started.replace(tzinfo=UTC)
    values: dict[str, Any] = {
        "completed_items": completed,
        "failed_items": failed,
        "finished_at": now,
        "processing_time": (now - started).total_seconds(),
    }
    if job.status != "cancelled":  # a cancelled job's progress stays where it stood
        values["progress"] = 100.0
    if job.status == "cancelled":
        status = "cancelled"
    elif completed or not total:
        status = "completed"
        values["stage"] = (
            "Processing completed successfully!"
            if not failed
            else f"Processing completed with {failed} failed item{'s' if failed > 1 else ''}"
        )
    else:
        status = "failed"
        first = s.scalar(
            select(Item.error)
            .where(Item.job_pk == job.id, Item.error.is_not(None))
            .order_by(Item.index)
            .limit(1)
        )
        values["error"] = (
            f"Processing failed: all {total} items failed; first: {first or 'unknown error'}"
        )
        values["stage"] = "Processing failed"
    values["status"] = status
    res = s.execute(
        update(Job)
        .where(Job.id == job.id, Job.finished_at.is_(None))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    s.flush()
    s.refresh(job)
    refresh_job(s, job)
    return bool(getattr(res, "rowcount", 0))
