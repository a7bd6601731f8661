"""``POST /process``: validate, record the job idempotently, enqueue it."""

from __future__ import annotations

import hashlib
import json
from urllib.parse import quote, urlparse

from fastapi import APIRouter, Request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ragcast.api.deps import Ctx, ProcessUser
from ragcast.api.schemas import JobAccepted, JobCreate, error_responses
from ragcast.auth import Principal, TicketSigner
from ragcast.errors import ConflictError, ValidationError
from ragcast.store.models import Item, Job, Upload

router = APIRouter(tags=["jobs"])

PLATFORM_SOURCES = ("tiktok", "youtube", "twitch")


def check_inputs(body: JobCreate) -> None:
    """Cross-field rules the schema alone cannot say."""
    if body.platform == "documents" and body.input_method != "upload":
        raise ValidationError("input_method", "platform 'documents' takes input_method 'upload'")
    if body.input_method == "upload" and not body.uploaded_documents:
        raise ValidationError(
            "uploaded_documents", "input_method 'upload' needs at least one document id"
        )
    if body.input_method == "channel":
        if not body.channel_url:
            raise ValidationError("channel_url", "input_method 'channel' needs channel_url")
        _check_url("channel_url", body.channel_url)
    if body.input_method == "urls":
        if not body.pasted_urls:
            raise ValidationError("pasted_urls", "input_method 'urls' needs at least one URL")
        for i, url in enumerate(body.pasted_urls):
            _check_url(f"pasted_urls[{i}]", url)
    if body.input_method in ("channel", "urls"):
        raise ValidationError(
            "input_method",
            f"fetching {body.input_method} from {body.platform} is not enabled on this server; "
            "upload the media with POST /uploads and use input_method 'upload'",
        )
    if body.settings.chunkOverlap >= body.settings.chunkSize:
        raise ValidationError("settings.chunkOverlap", "Must be smaller than settings.chunkSize")
    if len(set(body.uploaded_documents)) != len(body.uploaded_documents):
        raise ValidationError("uploaded_documents", "document ids must be unique")


def _check_url(field: str, url: str) -> None:
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValidationError(field, "Must be an http(s) URL")


def request_hash(body: JobCreate) -> str:
    """A digest of the request as the client meant it (``user_id`` left out)."""
    data = body.model_dump(mode="json", exclude={"user_id"})
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


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


def _items_for(s: Session, user: Principal, body: JobCreate) -> tuple[list[Item], list[Upload]]:
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
    responses=error_responses(400, 401, 409, 429, 500),
)
def start_processing(body: JobCreate, user: ProcessUser, ctx: Ctx, request: Request) -> JobAccepted:
    """Start a job; the same ``job_id`` and body again returns the same job."""
    check_inputs(body)
    spec = ctx.providers.resolve_embedding(body.embedding_model)
    vector_db = ctx.providers.check_vector_db(body.vector_db)
    collection = f"ragcast-u{user.user_id}-{spec.key}"
    ctx.providers.check_collection(vector_db, collection, spec.dimensions)
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
                request=body.model_dump(mode="json"),
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
            signer.issue(user.user_id, body.job_id),
        ),
        estimated_time=estimate(sizes),
    )
