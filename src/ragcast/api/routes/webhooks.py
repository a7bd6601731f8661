"""Webhooks: register an endpoint for events, list and delete them, follow deliveries.

Events are signed per Standard Webhooks with the secret returned (once) at creation;
see :mod:`ragcast.notify` for the outbox and the sender.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Path, Query
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from ragcast.api.deps import Ctx, CurrentUser
from ragcast.api.schemas import (
    ID_PATTERN,
    DeliveryAttempt,
    WebhookCreate,
    WebhookCreated,
    WebhookDeleted,
    WebhookDeliveryList,
    WebhookDeliveryStatus,
    WebhookList,
    WebhookPublic,
    error_responses,
)
from ragcast.errors import ConflictError, NotFoundError
from ragcast.notify.signing import new_secret
from ragcast.sources.safety import check_url
from ragcast.store.models import User, Webhook, WebhookDelivery, iso_utc

router = APIRouter(tags=["webhooks"])

WebhookIdPath = Annotated[str, Path(pattern=ID_PATTERN, max_length=128)]


def _public(hook: Webhook) -> WebhookPublic:
    return WebhookPublic(
        id=hook.webhook_id,
        url=hook.url,
        events=list(hook.events),
        description=hook.description,
        created_at=iso_utc(hook.created_at) or "",
    )


def _user_webhook(s: Session, user_id: int, webhook_id: str) -> Webhook:
    """The user's webhook; another user's is as absent as a missing one."""
    hook = s.scalar(
        select(Webhook).where(Webhook.user_id == user_id, Webhook.webhook_id == webhook_id)
    )
    if hook is None:
        raise NotFoundError(f"Webhook {webhook_id!r} not found")
    return hook


def check_room(s: Session, user_id: int, limit: int) -> None:
    """Refuse a new webhook (409) when the user has ``limit`` already (0: no limit).

    The user's row is locked first (PostgreSQL's row lock, SQLite's write lock), so
    concurrent creations are counted one after the other and none goes past the limit.
    """
    if limit <= 0:
        return
    s.execute(update(User).where(User.id == user_id).values(id=User.id))
    have = s.scalar(select(func.count(Webhook.id)).where(Webhook.user_id == user_id)) or 0
    if have >= limit:
        raise ConflictError(
            f"You have {have} webhooks, the most one user may have "
            f"(RAGCAST_MAX_WEBHOOKS_PER_USER={limit}); delete one before adding another"
        )


def _delivery(row: WebhookDelivery) -> WebhookDeliveryStatus:
    return WebhookDeliveryStatus(
        id=row.message_id,
        event=row.event,
        status=row.status,  # type: ignore[arg-type]
        attempts=row.attempts,
        last_status_code=row.last_status_code,
        last_error=row.last_error,
        next_attempt_at=iso_utc(row.next_attempt_at) if row.status == "pending" else None,
        created_at=iso_utc(row.created_at) or "",
        delivered_at=iso_utc(row.delivered_at),
        payload=row.payload,
        log=[DeliveryAttempt(**entry) for entry in row.log or []],
    )


@router.post(
    "/webhooks",
    status_code=201,
    response_model=WebhookCreated,
    operation_id="createWebhook",
    responses=error_responses(400, 401, 409, 413, 429),
)
def create_webhook(body: WebhookCreate, user: CurrentUser, ctx: Ctx) -> WebhookCreated:
    """Register a URL for events; the answer carries the signing secret, shown only here.

    A user has at most ``RAGCAST_MAX_WEBHOOKS_PER_USER`` webhooks (409 beyond).
    """
    check_url(body.url, field="url", allow_loopback=ctx.settings.allow_loopback_fetch)
    with ctx.db.session() as s:
        check_room(s, user.user_id, ctx.settings.max_webhooks_per_user)
        hook = Webhook(
            webhook_id=f"wh_{secrets.token_urlsafe(16)}",
            user_id=user.user_id,
            url=body.url,
            events=body.events,
            description=body.description,
            secret=new_secret(),
        )
        s.add(hook)
        s.flush()
        return WebhookCreated(**_public(hook).model_dump(), secret=hook.secret)


@router.get(
    "/webhooks",
    response_model=WebhookList,
    operation_id="listWebhooks",
    responses=error_responses(401, 429),
)
def list_webhooks(user: CurrentUser, ctx: Ctx) -> WebhookList:
    """The user's webhooks, oldest first, without their secrets."""
    with ctx.db.session() as s:
        hooks = s.scalars(
            select(Webhook).where(Webhook.user_id == user.user_id).order_by(Webhook.id)
        ).all()
        return WebhookList(webhooks=[_public(h) for h in hooks], total=len(hooks))


@router.delete(
    "/webhooks/{webhook_id}",
    response_model=WebhookDeleted,
    operation_id="deleteWebhook",
    responses=error_responses(400, 401, 404, 413, 429),
)
def delete_webhook(webhook_id: WebhookIdPath, user: CurrentUser, ctx: Ctx) -> WebhookDeleted:
    """Delete a webhook; its deliveries, pending ones included, go with it."""
    with ctx.db.session() as s:
        hook = _user_webhook(s, user.user_id, webhook_id)
        gone = _public(hook)
        s.delete(hook)  # the store cascades to its deliveries
    return WebhookDeleted(**gone.model_dump())


@router.get(
    "/webhooks/{webhook_id}/deliveries",
    response_model=WebhookDeliveryList,
    operation_id="listWebhookDeliveries",
    responses=error_responses(400, 401, 404, 429),
)
def list_webhook_deliveries(
    webhook_id: WebhookIdPath,
    user: CurrentUser,
    ctx: Ctx,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> WebhookDeliveryList:
    """A webhook's deliveries, newest first: status, attempts, answers and next retry."""
    with ctx.db.session() as s:
        hook = _user_webhook(s, user.user_id, webhook_id)
        mine = WebhookDelivery.webhook_pk == hook.id
        total = s.scalar(select(func.count(WebhookDelivery.id)).where(mine)) or 0
        rows = s.scalars(
            select(WebhookDelivery)
            .where(mine)
            .order_by(WebhookDelivery.id.desc())
            .limit(limit)
            .offset(offset)
        ).all()
        deliveries = [_delivery(r) for r in rows]
    return WebhookDeliveryList(
        webhook_id=webhook_id, deliveries=deliveries, total=total, limit=limit, offset=offset
    )
