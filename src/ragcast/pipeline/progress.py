"""Job progress: derived from the items' finished stages, published as contract events."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from ragcast.pipeline.stages import STAGES
from ragcast.store.models import Chunk, Item, Job

TERMINAL_JOB = ("completed", "failed", "cancelled")
TERMINAL_ITEM = ("completed", "failed", "cancelled")


def item_share(item: Item) -> float:
    """How much of an item's work is done, 0..1."""
    if item.status in TERMINAL_ITEM:
        return 1.0
    return STAGES.get(item.stage, 0.0)


def refresh_job(s: Session, job: Job) -> None:
    """Recompute progress, counters and stage text from the items.

    ``progress`` is written only upwards (a conditional update), so concurrent workers
    and a recovered job can never make it go backwards.
    """
    items = s.scalars(select(Item).where(Item.job_pk == job.id)).all()
    total = len(items) or 1
    done = sum(1 for i in items if i.status in TERMINAL_ITEM)
    progress = round(100.0 * sum(item_share(i) for i in items) / total, 1)
    if job.status not in TERMINAL_JOB:
        progress = min(progress, 99.9)
    embeddings = s.scalar(
        select(func.count(Chunk.id))
        .join(Item, Item.id == Chunk.item_id)
        .where(Item.job_pk == job.id, Chunk.embedding.is_not(None))
    )
    s.execute(
        update(Job)
        .where(Job.id == job.id, Job.progress < progress)
        .values(progress=progress)
        .execution_options(synchronize_session=False)
    )
    job.content_processed = done
    job.total_content = len(items)
    job.embeddings = int(embeddings or 0)
    if job.status == "processing":
        job.stage = f"Processing item {min(done + 1, len(items))}/{len(items)}"
    s.flush()
    s.refresh(job, ["progress"])


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
    items = s.scalars(select(Item).where(Item.job_pk == job.id)).all()
    if any(i.status not in TERMINAL_ITEM for i in items):
        return False
    completed = sum(1 for i in items if i.status == "completed")
    failed = sum(1 for i in items if i.status == "failed")
    now = datetime.now(UTC)
    started = job.started_at or job.created_at
    if started.tzinfo is None:
        started = started.replace(tzinfo=UTC)
    values: dict[str, Any] = {
        "completed_items": completed,
        "failed_items": failed,
        "finished_at": now,
        "processing_time": (now - started).total_seconds(),
        "progress": 100.0,
    }
    if job.status == "cancelled":
        status = "cancelled"
    elif completed or not items:
        status = "completed"
        values["stage"] = (
            "Processing completed successfully!"
            if not failed
            else f"Processing completed with {failed} failed item{'s' if failed > 1 else ''}"
        )
    else:
        status = "failed"
        first = next((i.error for i in items if i.error), "unknown error")
        values["error"] = f"Processing failed: all {len(items)} items failed; first: {first}"
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
