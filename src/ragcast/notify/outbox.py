"""The webhook outbox: one row per event and subscribed webhook, written in the caller's
transaction, so an event is recorded exactly when the change it reports is committed."""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ragcast.store.models import Webhook, WebhookDelivery, utcnow

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
