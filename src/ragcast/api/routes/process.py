"""``POST /process``: validate, record the job idempotently, enqueue it."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ragcast.api.deps import Ctx, ProcessUser
from ragcast.api.schemas import JobAccepted, error_responses
from ragcast.auth import Principal
from ragcast.errors import ConflictError, ValidationError
from ragcast.pipeline.submission import (
    check_backends,
    check_inputs,
    check_language,
    check_sources,
    request_hash,
    stored_request,
)
from ragcast.sources.platforms import content_id, video_id
from ragcast.spec import JobCreate
from ragcast.store.models import Item, Job, Upload
from ragcast.tickets import TicketSigner

router = APIRouter(tags=["jobs"])

__all__ = [  # the checks are shared with subscriptions: see ragcast.pipeline.submission
    "check_backends",
    "check_inputs",
    "check_language",
    "check_sources",
    "request_hash",
    "router",
    "stored_request",
]


def websocket_url(request: Request, public_url: str | None, job_id: str, ticket: str) -> str:
    """The absolute ``ws(s)://`` URL of a job's progress socket, ticket included."""
    base = public_url.rstrip("/") if public_url else str(request.base_url).rstrip("/")
    base = "ws" + base.removeprefix("http") if base.startswith("http") else base
    path = f"/api/public/bulk/ws/bulk-processing/{quote(job_id, safe='')}"
    return f"{base}{path}?token={quote(ticket, safe='')}"


def estimate(sizes: list[tuple[str, int]]) -> str:
    """A rough duration: compressed audio ~16 kB/s, transcribed at ~0.15x real time."""
    seconds = 5.0
    for kind, size in sizes:
        seconds += size / 16_000 * 0.15 if kind in ("audio", "video") else 1.0
    minutes = round(seconds / 60)
    if minutes < 1:
        return "less than a minute"
    return f"{minutes} minute{'s' if minutes > 1 else ''}"


def _url_items(body: JobCreate) -> list[Item]:
    """One item per pasted URL, taken as given (its metadata arrives when it is fetched)."""
    items = []
    for n, url in enumerate(body.pasted_urls):
        vid = video_id(url)
        items.append(
            Item(
                index=n,
                content_id=content_id(body.platform, vid, url),
                source_type=body.platform,
                source_ref=url,
                url=url,
            )
        )
    return items


def _items_for(s: Session, user: Principal, body: JobCreate) -> tuple[list[Item], list[Upload]]:
    if body.input_method == "urls":
        return _url_items(body), []
    uploads = []
    for i, doc_id in enumerate(body.uploaded_documents):
        up = s.scalar(
            select(Upload).where(Upload.document_id == doc_id, Upload.user_id == user.user_id)
        )
        if up is None:
            raise ValidationError(f"uploaded_documents[{i}]", f"unknown document id {doc_id!r}")
        uploads.append(up)
    items = [
        Item(
            index=n,
            content_id=f"upload-{up.sha256[:16]}",
            source_type="upload",
            source_ref=up.document_id,
            title=up.filename,
            content_type=up.content_type,
        )
        for n, up in enumerate(uploads)
    ]
    return items, uploads


@router.post(
    "/process",
    response_model=JobAccepted,
    operation_id="startProcessing",
    responses=error_responses(400, 401, 409, 413, 429, 500),
)
def start_processing(body: JobCreate, user: ProcessUser, ctx: Ctx, request: Request) -> JobAccepted:
    """Start a job; the same ``job_id`` and body again returns the same job."""
    check_inputs(body)
    check_language(body, ctx.settings)
    check_sources(body, ctx.settings)
    spec, vector_db, collection = check_backends(ctx, body)
    digest = request_hash(body)
    signer: TicketSigner = request.app.state.signer
    created = False
    with ctx.db.session() as s:
        job = s.scalar(select(Job).where(Job.user_id == user.user_id, Job.job_id == body.job_id))
        if job is None:
            items, uploads = _items_for(s, user, body)
            job = Job(
                job_id=body.job_id,
                user_id=user.user_id,
                request_hash=digest,
                request=stored_request(body, spec),
                platform=body.platform,
                input_method=body.input_method,
                embedding_model=spec.id,
                dimensions=spec.dimensions,
                vector_db=vector_db,
                collection=collection,
                total_content=len(items),
                stage="Queued",
                items=items,
            )
            s.add(job)
            try:
                s.flush()
            except IntegrityError:  # the same job_id raced in: answer as for a repeat
                s.rollback()
                job = s.scalar(
                    select(Job).where(Job.user_id == user.user_id, Job.job_id == body.job_id)
                )
                assert job is not None
            else:
                created = True
            sizes = [(u.kind, u.size) for u in uploads]
        else:
            sizes = []
        if job.request_hash != digest:
            raise ConflictError(
                f"job_id {body.job_id!r} is already used by a different request; use a new job_id"
            )
        job_pk = job.id
    if created:
        request.app.state.runner.start_job.send(job_pk)
    return JobAccepted(
        job_id=body.job_id,
        message="Bulk processing started successfully",
        websocket_url=websocket_url(
            request,
            ctx.settings.public_url,
            body.job_id,
            signer.issue(user.user_id, body.job_id, user.key_id),
        ),
        estimated_time=estimate(sizes),
    )
