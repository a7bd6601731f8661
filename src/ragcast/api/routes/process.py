"""``POST /process``: validate, record the job idempotently, enqueue it."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ragcast.api.deps import Ctx, ProcessUser
from ragcast.api.schemas import JobAccepted, JobCreate, error_responses
from ragcast.auth import Principal, TicketSigner
from ragcast.context import Context
from ragcast.errors import ConfigurationError, ConflictError, ValidationError
from ragcast.providers.embedders.base import EmbeddingSpec
from ragcast.retrieval.layout import collection_name
from ragcast.settings import Settings
from ragcast.sources.platforms import content_id, platform_of, video_id
from ragcast.sources.safety import check_url
from ragcast.spec import AUTO
from ragcast.store.models import Item, Job, Upload

router = APIRouter(tags=["jobs"])


def check_inputs(body: JobCreate) -> None:
    """Cross-field rules the schema alone cannot say."""
    if body.platform == "documents" and body.input_method != "upload":
        raise ValidationError("input_method", "platform 'documents' takes input_method 'upload'")
    if body.input_method == "upload" and not body.uploaded_documents:
        raise ValidationError(
            "uploaded_documents", "input_method 'upload' needs at least one document id"
        )
    if body.input_method == "channel" and not body.channel_url:
        raise ValidationError("channel_url", "input_method 'channel' needs channel_url")
    if body.input_method == "urls" and not body.pasted_urls:
        raise ValidationError("pasted_urls", "input_method 'urls' needs at least one URL")
    if body.settings.chunkOverlap >= body.settings.chunkSize:
        raise ValidationError("settings.chunkOverlap", "Must be smaller than settings.chunkSize")
    if len(set(body.uploaded_documents)) != len(body.uploaded_documents):
        raise ValidationError("uploaded_documents", "document ids must be unique")


def check_language(body: JobCreate, settings: Settings) -> None:
    """A named language the server's Whisper model cannot transcribe is refused now."""
    language = body.settings.language
    if language not in (AUTO, "en") and settings.whisper_english_only:
        raise ValidationError(
            "settings.language",
            f"this server's Whisper model ({settings.whisper_model}) transcribes English only",
        )


def check_sources(body: JobCreate, settings: Settings) -> list[tuple[str, str]]:
    """The (field, URL) pairs a platform job fetches, each checked safe and on-platform."""
    if body.input_method == "channel":
        urls = [("channel_url", body.channel_url or "")]
    elif body.input_method == "urls":
        urls = [(f"pasted_urls[{i}]", u) for i, u in enumerate(body.pasted_urls)]
    else:
        return []
    if importlib.util.find_spec("yt_dlp") is None:
        raise ValidationError(
            "input_method", "fetching from platforms needs the 'platforms' extra (yt-dlp)"
        )
    for field, url in urls:
        check_url(url, field=field, allow_loopback=settings.allow_loopback_fetch)
        found = platform_of(url)
        if found is None and not settings.allow_generic_extractor:
            raise ValidationError(field, f"not a {body.platform} URL")
        if found is not None and found != body.platform:
            raise ValidationError(field, f"a {found} URL, but platform is {body.platform!r}")
    return urls


def request_hash(body: JobCreate) -> str:
    """A digest of the request as the client meant it (``user_id`` left out)."""
    data = body.model_dump(mode="json", exclude={"user_id"})
    # defaults of settings added later are left out: bodies from before them hash the same
    for key, default in (("language", AUTO), ("diarize", False)):
        if data["settings"].get(key) == default:
            data["settings"].pop(key)
    for key in ("min_speakers", "max_speakers"):
        if data["settings"].get(key) is None:
            data["settings"].pop(key, None)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def stored_request(body: JobCreate, spec: EmbeddingSpec) -> dict[str, Any]:
    """The request as kept with the job, naming the ``local`` model it was embedded with
    (so the job's vectors and its searches stay with that model whatever the default)."""
    request: dict[str, Any] = body.model_dump(mode="json")
    if spec.id == "local":
        request["embedding_model"]["model"] = spec.options["model"]
    return request


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


def check_backends(ctx: Context, body: JobCreate) -> tuple[EmbeddingSpec, str, str]:
    """The embedding model, vector database and collection of a job, each checked
    (known, installed, configured, compatible); ValidationError names the field."""
    spec = ctx.providers.resolve_embedding(body.embedding_model)
    vector_db = ctx.providers.check_vector_db(body.vector_db)
    if spec.options.get("multi_vector"):
        try:
            multi_ok = ctx.providers.vector_store(vector_db).supports_multi_vector
        except ConfigurationError as exc:
            raise ValidationError("vector_db.id", exc.message) from exc
        if not multi_ok:
            raise ValidationError(
                "embedding_model.jina_v4_multi_vector",
                f"the {vector_db} vector database cannot store multi-vector embeddings; "
                "choose one that can (qdrant) or turn jina_v4_multi_vector off",
            )
    collection = collection_name(spec)
    ctx.providers.check_collection(vector_db, collection, spec.dimensions)
    return spec, vector_db, collection


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
