"""Job status, items, cancellation and the job list."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, load_only
from sqlalchemy.sql.base import ExecutableOption
from starlette.concurrency import run_in_threadpool

from ragcast.api.cache import StatusCache
from ragcast.api.deps import Ctx, CurrentUser
from ragcast.api.routes.process import websocket_url
from ragcast.api.schemas import (
    ID_PATTERN,
    MAX_ITEMS_PAGE,
    ItemList,
    ItemState,
    ItemStatus,
    JobCancelled,
    JobDeleted,
    JobList,
    JobResult,
    JobState,
    JobStatus,
    JobSummary,
    error_responses,
)
from ragcast.context import Context
from ragcast.errors import ConflictError, NotFoundError, ValidationError
from ragcast.pipeline.progress import TERMINAL_ITEM, TERMINAL_JOB, job_result, terminal_event
from ragcast.pipeline.purge import claim_job, delete_jobs, finish
from ragcast.store.models import Item, Job
from ragcast.tickets import TicketSigner

router = APIRouter(tags=["jobs"])

JobIdPath = Annotated[str, Path(pattern=ID_PATTERN, max_length=128)]


def user_job(s: Session, user_id: int, job_id: str, *options: ExecutableOption) -> Job:
    """The user's job ``job_id``; another user's job is as absent as a missing one.

    ``options`` shape the load (``load_only`` for a reader of a few columns).
    """
    query = select(Job).where(Job.user_id == user_id, Job.job_id == job_id)
    job = s.scalar(query.options(*options))
    if job is None:
        raise NotFoundError(f"Job {job_id!r} not found")
    return job


def job_status(job: Job) -> JobStatus:
    """The contract's status body of ``job``."""
    return JobStatus(
        job_id=job.job_id,
        status=job.status,  # type: ignore[arg-type]
        progress=job.progress,
        stage=job.stage,
        content_processed=job.content_processed,
        total_content=job.total_content,
        embeddings=job.embeddings,
        error=job.error,
        result=JobResult(**job_result(job)) if job.finished_at is not None else None,
    )


#: the columns a status answer reads (not the stored request, which may be large)
_STATUS_COLUMNS = load_only(
    Job.id,
    Job.job_id,
    Job.status,
    Job.progress,
    Job.stage,
    Job.content_processed,
    Job.total_content,
    Job.completed_items,
    Job.failed_items,
    Job.embeddings,
    Job.error,
    Job.processing_time,
    Job.finished_at,
)


def _read_status(ctx: Context, statuses: StatusCache, user_id: int, job_id: str) -> bytes:
    """The status answer of a job, read from the store (one indexed row) and kept."""
    version = statuses.version()
    with ctx.db.session() as s:
        job = user_job(s, user_id, job_id, _STATUS_COLUMNS)
        body = job_status(job).model_dump_json().encode()
        job_pk, finished = job.id, job.finished_at is not None
    statuses.put(user_id, job_id, job_pk, body, finished, version)
    return body


@router.get(
    "/job/{job_id}/status",
    response_model=JobStatus,
    operation_id="getJobStatus",
    responses=error_responses(400, 401, 404, 429),
)
async def get_job_status(job_id: JobIdPath, user: CurrentUser, request: Request) -> Response:
    """Current status and progress of a job."""
    statuses: StatusCache = request.app.state.statuses
    body = statuses.get(user.user_id, job_id)
    if body is None:
        ctx: Context = request.app.state.ctx
        body = await run_in_threadpool(_read_status, ctx, statuses, user.user_id, job_id)
    return Response(body, media_type="application/json")


def item_status(i: Item) -> ItemStatus:
    """The answer's entry of item ``i``."""
    return ItemStatus(
        index=i.index,
        content_id=i.content_id,
        source_type=i.source_type,
        source=i.title or i.source_ref,
        title=i.title,
        url=i.url,
        status=i.status,
        stage=i.stage,
        transcript_source=i.transcript_source,
        duration_s=i.duration_s,
        chunks=i.chunk_count,
        tokens=i.token_count,
        attempts=i.attempts,
        error=i.error,
        language=i.language,
        language_probability=i.language_probability,
        warnings=list(i.warnings or []),
    )


@router.get(
    "/job/{job_id}/items",
    response_model=ItemList,
    operation_id="getJobItems",
    responses=error_responses(400, 401, 404, 429),
)
def get_job_items(
    job_id: JobIdPath,
    user: CurrentUser,
    ctx: Ctx,
    limit: Annotated[
        int, Query(ge=1, le=MAX_ITEMS_PAGE, description="Items per page (at most 1000).")
    ] = 100,
    offset: Annotated[
        int | None,
        Query(ge=0, le=1_000_000, description="Items to skip (of those that match)."),
    ] = None,
    after: Annotated[
        int | None,
        Query(
            ge=0,
            le=2**31 - 1,
            description="Only items whose index is greater: the `next_after` of the previous "
            "page (instead of `offset`).",
        ),
    ] = None,
    status: Annotated[ItemState | None, Query(description="Only items in this status.")] = None,
) -> ItemList:
    """A job's content items in index order, one page at a time, each with its stage,
    transcript source and error.

    Page with `offset` (as `GET /jobs`) or with the `after` cursor: pass each page's
    `next_after` as `after` until it is null. `total` counts the items that match.
    """
    if offset is not None and after is not None:
        raise ValidationError("after", "give either offset or after, not both")
    with ctx.db.session() as s:
        job_pk = s.scalar(select(Job.id).where(Job.user_id == user.user_id, Job.job_id == job_id))
        if job_pk is None:
            raise NotFoundError(f"Job {job_id!r} not found")
        matching = select(Item).where(Item.job_pk == job_pk)
        if status is not None:
            matching = matching.where(Item.status == status)
        counted = select(func.count()).select_from(matching.subquery())
        total = int(s.scalar(counted) or 0)
        page = matching.order_by(Item.index)
        if after is not None:
            page = page.where(Item.index > after)
            before = select(func.count()).select_from(
                matching.where(Item.index <= after).subquery()
            )
            start = int(s.scalar(before) or 0)
        else:
            start = offset or 0
            page = page.offset(start)
        rows = list(s.scalars(page.limit(limit + 1)))
        more = len(rows) > limit
        items = [item_status(i) for i in rows[:limit]]
    return ItemList(
        job_id=job_id,
        items=items,
        total=total,
        limit=limit,
        offset=start,
        next_after=items[-1].index if more else None,
    )


@router.delete(
    "/job/{job_id}",
    response_model=JobDeleted,
    operation_id="deleteJob",
    responses=error_responses(400, 401, 404, 409, 413, 429),
)
def delete_job(job_id: JobIdPath, user: CurrentUser, ctx: Ctx, request: Request) -> JobDeleted:
    """Delete a finished job: its items, chunks, exports, the uploads and media only it
    used, and its vectors where no other job of yours holds the same content. Of
    concurrent deletions of one job, one answers 200 and the others 404."""
    with ctx.db.session() as s:
        job = user_job(s, user.user_id, job_id)
        if job.finished_at is None:
            raise ConflictError(
                f"Job {job_id!r} is {job.status}: cancel it (POST /job/{job_id}/cancel) and "
                "delete it once it has stopped"
            )
        if not claim_job(s, job):  # a concurrent deletion of the job answers 200 alone
            raise NotFoundError(f"Job {job_id!r} not found")
        job_pk = job.id
        out = delete_jobs(s, [job], vectors=True)
    request.app.state.statuses.invalidate(job_pk)  # its status answers 404 from now on
    finish(ctx, out)
    return JobDeleted(
        job_id=job_id,
        deleted_items=out.items,
        deleted_exports=out.exports,
        deleted_uploads=out.uploads,
        deleted_vector_contents=len(out.vectors),
    )


@router.post(
    "/job/{job_id}/cancel",
    response_model=JobCancelled,
    operation_id="cancelJob",
    responses=error_responses(400, 401, 404, 409, 413, 429),
)
def cancel_job(job_id: JobIdPath, user: CurrentUser, ctx: Ctx, request: Request) -> JobCancelled:
    """Cancel a job: no new stage of any of its items starts after this."""
    with ctx.db.session() as s:
        job = user_job(s, user.user_id, job_id)
        if job.status in TERMINAL_JOB:
            raise ConflictError(f"Job {job_id!r} is already {job.status}")
        job.status = "cancelled"
        job.stage = "Cancelled by user"
        job.error = "Job cancelled by user"
        s.execute(
            update(Item)
            .where(Item.job_pk == job.id, Item.status == "pending")
            .values(status="cancelled", error="cancelled by user")
        )
        s.flush()
        event = terminal_event(job)
        event["message"] = "Job cancelled by user"
        job_pk = job.id
    ctx.bus.publish(job_pk, event)
    # Close the job now if no item is mid-stage; a running item closes it when it stops.
    request.app.state.runner.start_job.send(job_pk)
    return JobCancelled(job_id=job_id, status="cancelled")


class JobTicket(BaseModel):
    """Answer of ``GET /job/{job_id}/ticket``: the job's progress socket, ticket included."""

    job_id: str
    websocket_url: str
    expires_in: int


@router.get(
    "/job/{job_id}/ticket",
    response_model=JobTicket,
    operation_id="getJobTicket",
    responses=error_responses(400, 401, 404, 429),
)
def get_job_ticket(job_id: JobIdPath, user: CurrentUser, ctx: Ctx, request: Request) -> JobTicket:
    """A fresh ``websocket_url`` for a job, for clients that cannot send headers on a
    WebSocket (browsers) and did not start the job themselves."""
    with ctx.db.session() as s:
        user_job(s, user.user_id, job_id)
    signer: TicketSigner = request.app.state.signer
    ticket = signer.issue(user.user_id, job_id, user.key_id)
    return JobTicket(
        job_id=job_id,
        websocket_url=websocket_url(request, ctx.settings.public_url, job_id, ticket),
        expires_in=signer.ttl_s,
    )


@router.get(
    "/jobs",
    response_model=JobList,
    operation_id="listJobs",
    responses=error_responses(400, 401, 429),
)
def list_jobs(
    user: CurrentUser,
    ctx: Ctx,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    status: JobState | None = None,
) -> JobList:
    """The user's jobs, newest first, one page at a time."""
    with ctx.db.session() as s:
        q = select(Job).where(Job.user_id == user.user_id)
        if status is not None:
            q = q.where(Job.status == status)
        total = s.scalar(select(func.count()).select_from(q.subquery())) or 0
        rows = s.scalars(
            q.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit).offset(offset)
        )
        jobs = [
            JobSummary(
                **job_status(j).model_dump(),
                platform=j.platform,
                input_method=j.input_method,
                embedding_model=j.embedding_model,
                vector_db=j.vector_db,
                created_at=j.created_at.isoformat(),
            )
            for j in rows
        ]
    return JobList(jobs=jobs, total=total, limit=limit, offset=offset)


__all__ = ["router", "user_job", "job_status", "TERMINAL_ITEM"]
