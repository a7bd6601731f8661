"""The webhook outbox: one row per event and subscribed webhook, written in the caller's
transaction, so an event is recorded exactly when the change it reports is committed."""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ragcast.pipeline.progress import job_result
from ragcast.store.models import Export, Item, Job, Webhook, WebhookDelivery, utcnow

#: the events a webhook may subscribe to
EVENTS: tuple[str, ...] = (
    "job.completed",
    "job.failed",
    "job.cancelled",
    "item.failed",
    "export.completed",
    "subscription.synced",
)


def enqueue_event(s: Session, user_id: int, event: str, data: dict[str, Any]) -> int:
    """Record ``event`` for each of the user's webhooks that subscribed to it.

    The payload is ``{"type", "timestamp", "data"}`` (the Standard Webhooks shape); each
    delivery has its own ``msg_…`` id, kept across retries. Returns how many were queued.
    Nothing is committed here: the caller's transaction carries the rows.
    """
    if event not in EVENTS:
        raise ValueError(f"unknown webhook event {event!r}")
    hooks = s.scalars(select(Webhook).where(Webhook.user_id == user_id)).all()
    now = utcnow()
    payload = {"type": event, "timestamp": now.isoformat(), "data": data}
    queued = 0
    for hook in hooks:
        if event in (hook.events or []):
            s.add(
                WebhookDelivery(
                    webhook_pk=hook.id,
                    message_id=f"msg_{secrets.token_urlsafe(18)}",
                    event=event,
                    payload=payload,
                    status="pending",
                    attempts=0,
                    next_attempt_at=now,
                )
            )
            queued += 1
    return queued


#: the API's prefix (``ragcast.api.app.API_PREFIX``), not imported: workers skip the API
API_PREFIX = "/api/public/bulk"


def job_closed(s: Session, job: Job) -> int:
    """Queue ``job.completed``, ``job.failed`` or ``job.cancelled`` for a job just closed."""
    if f"job.{job.status}" not in EVENTS:
        return 0  # never fail the close itself over an event that does not exist
    return enqueue_event(
        s,
        job.user_id,
        f"job.{job.status}",
        {"job_id": job.job_id, "status": job.status, "result": job_result(job), "error": job.error},
    )


def item_failed(s: Session, item: Item, reason: str) -> int:
    """Queue ``item.failed`` for an item that has just failed."""
    job = item.job
    data = {"job_id": job.job_id, "index": item.index, "content_id": item.content_id}
    return enqueue_event(s, job.user_id, "item.failed", {**data, "error": reason})


def export_completed(s: Session, export: Export) -> int:
    """Queue ``export.completed`` for an export whose file has just been written."""
    return enqueue_event(
        s,
        export.user_id,
        "export.completed",
        {
            "export_id": export.export_id,
            "job_id": export.job.job_id,
            "format": export.format,
            "download_url": f"{API_PREFIX}/download/{export.export_id}",
            "filename": export.filename,
            "file_size": export.file_size,
        },
    )
