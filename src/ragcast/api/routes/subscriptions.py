"""Subscriptions: a channel kept indexed, one ordinary channel job per run."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from ragcast.api.deps import Ctx, CurrentUser, ProcessUser
from ragcast.api.routes.jobs import job_status
from ragcast.api.routes.process import stored_request
from ragcast.api.schemas import (
    SubscriptionCreate,
    SubscriptionDeleted,
    SubscriptionList,
    SubscriptionPublic,
    error_responses,
)
from ragcast.errors import ConflictError, NotFoundError, ValidationError
from ragcast.sources.subscriptions import (
    new_subscription_id,
    run_body,
    run_going,
    start_run,
    validate,
)
from ragcast.store.models import Job, Subscription, User, iso_utc, utcnow

router = APIRouter(tags=["subscriptions"])

SubscriptionIdPath = Annotated[str, Path(pattern=r"^sub_[A-Za-z0-9_-]{1,36}$", max_length=40)]


def user_subscription(s: Session, user_id: int, subscription_id: str) -> Subscription:
    """The user's subscription; another user's is as absent as a missing one."""
    sub = s.scalar(
        select(Subscription).where(
            Subscription.user_id == user_id, Subscription.subscription_id == subscription_id
        )
    )
    if sub is None:
        raise NotFoundError(f"Subscription {subscription_id!r} not found")
    return sub


def public(s: Session, sub: Subscription) -> SubscriptionPublic:
    """The answer of ``sub``, with its last job's status read now."""
    job = None
    if sub.last_job_id is not None:
        job = s.scalar(select(Job).where(Job.user_id == sub.user_id, Job.job_id == sub.last_job_id))
    return SubscriptionPublic.model_validate(
        {
            "subscription_id": sub.subscription_id,
            "platform": sub.platform,
            "channel_url": sub.channel_url,
            "embedding_model": sub.request["embedding_model"],
            "vector_db": sub.request["vector_db"],
            "settings": sub.request.get("settings") or {},
            "interval": sub.interval_s,
            "status": sub.status,
            "next_run_at": iso_utc(sub.next_run_at),
            "runs": sub.runs,
            "last_job_id": sub.last_job_id,
            "last_run_at": iso_utc(sub.last_run_at),
            "last_job": job_status(job) if job is not None else None,
            "last_result": sub.last_result,
            "created_at": iso_utc(sub.created_at),
        }
    )


def check_room(s: Session, user_id: int, limit: int) -> None:
    """Refuse a new subscription (409) when the user has ``limit`` already (0: no limit).

    The user's row is locked first (PostgreSQL's row lock, SQLite's write lock), so
    concurrent creations are counted one after the other and none goes past the limit.
    """
    if limit <= 0:
        return
    s.execute(update(User).where(User.id == user_id).values(id=User.id))
    have = s.scalar(select(func.count(Subscription.id)).where(Subscription.user_id == user_id))
    if (have or 0) >= limit:
        raise ConflictError(
            f"You have {have} subscriptions, the most one user may have "
            f"(RAGCAST_MAX_SUBSCRIPTIONS_PER_USER={limit}); delete one before adding another"
        )


def _run_in_progress(subscription_id: str, job_id: str) -> ConflictError:
    return ConflictError(
        f"A run of {subscription_id!r} is in progress (job {job_id!r}); runs never overlap: "
        "start the next one once it has finished"
    )


@router.post(
    "/subscriptions",
    response_model=SubscriptionPublic,
    operation_id="createSubscription",
    responses=error_responses(400, 401, 409, 413, 429, 500),
)
def create_subscription(
    body: SubscriptionCreate, user: ProcessUser, ctx: Ctx
) -> SubscriptionPublic:
    """Keep a channel indexed: its first run starts at once, then one every ``interval``,
    each an ordinary job of the channel's items not indexed yet.

    A user has at most ``RAGCAST_MAX_SUBSCRIPTIONS_PER_USER`` subscriptions (409 beyond).
    """
    minimum = ctx.settings.subscription_min_interval_s
    if body.interval_s < minimum:
        raise ValidationError(
            "interval", f"must be at least {minimum} seconds, got {body.interval_s}"
        )
    if getattr(body.settings, "force", None):
        raise ValidationError("settings.force", "a subscription processes only new items")
    subscription_id = new_subscription_id()
    request = {
        "embedding_model": body.embedding_model.model_dump(mode="json"),
        "vector_db": body.vector_db.model_dump(mode="json"),
        "settings": body.settings.model_dump(mode="json"),
    }
    job = run_body(f"{subscription_id}-1", body.platform, body.channel_url, request)
    spec, _, _ = validate(ctx, job)
    # the local model named now embeds every run, whatever the server's default later
    request["embedding_model"] = stored_request(job, spec)["embedding_model"]
    with ctx.db.session() as s:
        check_room(s, user.user_id, ctx.settings.max_subscriptions_per_user)
        sub = Subscription(
            subscription_id=subscription_id,
            user_id=user.user_id,
            platform=body.platform,
            channel_url=body.channel_url,
            request=request,
            interval_s=body.interval_s,
            status="active",
            next_run_at=utcnow(),
            runs=0,
        )
        s.add(sub)
        s.flush()
        return public(s, sub)


@router.get(
    "/subscriptions",
    response_model=SubscriptionList,
    operation_id="listSubscriptions",
    responses=error_responses(400, 401, 429),
)
def list_subscriptions(user: CurrentUser, ctx: Ctx) -> SubscriptionList:
    """The user's subscriptions, oldest first."""
    with ctx.db.session() as s:
        subs = s.scalars(
            select(Subscription)
            .where(Subscription.user_id == user.user_id)
            .order_by(Subscription.created_at, Subscription.id)
        ).all()
        return SubscriptionList(subscriptions=[public(s, sub) for sub in subs], total=len(subs))


@router.get(
    "/subscriptions/{subscription_id}",
    response_model=SubscriptionPublic,
    operation_id="getSubscription",
    responses=error_responses(400, 401, 404, 429),
)
def get_subscription(
    subscription_id: SubscriptionIdPath, user: CurrentUser, ctx: Ctx
) -> SubscriptionPublic:
    """A subscription and its last run's job as it is now."""
    with ctx.db.session() as s:
        return public(s, user_subscription(s, user.user_id, subscription_id))


def _set_status(ctx: Ctx, user_id: int, subscription_id: str, status: str) -> SubscriptionPublic:
    """Set the user's subscription ``active`` or ``paused``; its answer."""
    with ctx.db.session() as s:
        sub = user_subscription(s, user_id, subscription_id)
        sub.status = status
        if status == "active" and sub.next_run_at is None:
            sub.next_run_at = utcnow()
        s.flush()
        return public(s, sub)


@router.post(
    "/subscriptions/{subscription_id}/pause",
    response_model=SubscriptionPublic,
    operation_id="pauseSubscription",
    responses=error_responses(400, 401, 404, 413, 429),
)
def pause_subscription(
    subscription_id: SubscriptionIdPath, user: CurrentUser, ctx: Ctx
) -> SubscriptionPublic:
    """Start no run until resumed (a run already started goes on)."""
    return _set_status(ctx, user.user_id, subscription_id, "paused")


@router.post(
    "/subscriptions/{subscription_id}/resume",
    response_model=SubscriptionPublic,
    operation_id="resumeSubscription",
    responses=error_responses(400, 401, 404, 413, 429),
)
def resume_subscription(
    subscription_id: SubscriptionIdPath, user: CurrentUser, ctx: Ctx
) -> SubscriptionPublic:
    """Run again on schedule; a run that fell due while paused starts at once."""
    return _set_status(ctx, user.user_id, subscription_id, "active")


@router.post(
    "/subscriptions/{subscription_id}/run",
    response_model=SubscriptionPublic,
    operation_id="runSubscription",
    responses=error_responses(400, 401, 404, 409, 413, 429, 500),
)
def run_subscription(
    subscription_id: SubscriptionIdPath, user: ProcessUser, ctx: Ctx, request: Request
) -> SubscriptionPublic:
    """Start a run now (paused or not); the next one follows an ``interval`` later.

    Runs never overlap: while the last run's job is going, the answer is a 409 naming it
    and nothing starts.
    """
    with ctx.db.session() as s:
        sub = user_subscription(s, user.user_id, subscription_id)
        going = run_going(s, sub)
        if going is not None:
            raise _run_in_progress(subscription_id, going)
        pk = sub.id
    job_id = start_run(ctx, pk, request.app.state.runner.start_job.send, due_only=False)
    with ctx.db.session() as s:
        sub = user_subscription(s, user.user_id, subscription_id)
        if job_id is None and sub.last_job_id is not None:
            # Another request (or the scheduler) started the run first.
            raise _run_in_progress(subscription_id, run_going(s, sub) or sub.last_job_id)
        return public(s, sub)


@router.delete(
    "/subscriptions/{subscription_id}",
    response_model=SubscriptionDeleted,
    operation_id="deleteSubscription",
    responses=error_responses(400, 401, 404, 413, 429),
)
def delete_subscription(
    subscription_id: SubscriptionIdPath, user: CurrentUser, ctx: Ctx
) -> SubscriptionDeleted:
    """Stop following the channel; its jobs (and what they indexed) stay."""
    with ctx.db.session() as s:
        sub = user_subscription(s, user.user_id, subscription_id)
        out = public(s, sub)
        s.delete(sub)
    return SubscriptionDeleted.model_validate(out.model_dump())
