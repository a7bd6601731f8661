"""``POST /uploads``: stream a file to disk with a size cap and content sniffing."""

from __future__ import annotations

import hashlib
import secrets
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, UploadFile
from fastapi import Path as PathParam
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from ragcast.api.deps import Ctx, CurrentUser
from ragcast.api.schemas import UploadDeleted, UploadPublic, error_responses
from ragcast.errors import (
    ConflictError,
    MediaError,
    NotFoundError,
    PayloadTooLargeError,
    ValidationError,
)
from ragcast.pipeline.archive import DocumentLimits, check_docx
from ragcast.pipeline.purge import Purged, delete_uploads, finish
from ragcast.pipeline.sniff import sniff
from ragcast.store.models import Item, Job, Upload

router = APIRouter(tags=["uploads"])

CHUNK = 1024 * 1024


def _too_large(limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(f"File is larger than the upload limit of {limit} bytes")


def check_archive(path: Path, limits: DocumentLimits) -> None:
    """Refuse a DOCX that would unfold beyond ``limits`` (a zip or XML bomb)."""
    try:
        check_docx(path, limits)
    except MediaError as exc:
        raise ValidationError("file", exc.message) from exc


@router.post(
    "/uploads",
    response_model=UploadPublic,
    operation_id="uploadDocument",
    responses=error_responses(400, 401, 413, 429),
)
async def upload_document(
    file: Annotated[UploadFile, File(description="Media or document")],
    user: CurrentUser,
    ctx: Ctx,
) -> UploadPublic:
    """Store an uploaded recording or document; returns its ``document_id``."""
    # The body guard (api/middleware.py) refused a body over the limit before and while
    # it streamed; the file itself is counted again here, exactly.
    limit = ctx.settings.max_upload_bytes
    head = await file.read(8192)
    sniffed = sniff(head, file.filename or "upload")
    document_id = f"doc_{secrets.token_hex(12)}"
    path = ctx.settings.data_path("uploads", f"{document_id}.{sniffed.extension}")
    digest = hashlib.sha256()
    size = 0
    try:
        with path.open("wb") as out:
            block = head
            while block:
                size += len(block)
                if size > limit:
                    raise _too_large(limit)
                digest.update(block)
                out.write(block)
                block = await file.read(CHUNK)
        if sniffed.extension == "docx":
            await run_in_threadpool(check_archive, path, DocumentLimits.from_settings(ctx.settings))
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    filename = Path(file.filename or f"upload.{sniffed.extension}").name[:255]
    row = Upload(
        document_id=document_id,
        user_id=user.user_id,
        filename=filename,
        size=size,
        sha256=digest.hexdigest(),
        content_type=sniffed.content_type,
        kind=sniffed.kind,
        path=str(path),
    )

    def record() -> None:
        with ctx.db.session() as s:
            s.add(row)

    await run_in_threadpool(record)
    return UploadPublic(
        document_id=document_id,
        filename=filename,
        size=size,
        sha256=digest.hexdigest(),
        content_type=sniffed.content_type,
    )


@router.delete(
    "/uploads/{document_id}",
    response_model=UploadDeleted,
    operation_id="deleteUpload",
    responses=error_responses(400, 401, 404, 409, 413, 429),
)
def delete_upload(
    document_id: Annotated[str, PathParam(max_length=64)], user: CurrentUser, ctx: Ctx
) -> UploadDeleted:
    """Delete an upload no job uses (a job's uploads go with ``DELETE /job/{job_id}``)."""
    with ctx.db.session() as s:
        row = s.scalar(
            select(Upload).where(Upload.document_id == document_id, Upload.user_id == user.user_id)
        )
        if row is None:
            raise NotFoundError(f"Upload {document_id!r} not found")
        job_id = s.scalar(
            select(Job.job_id)
            .join(Item, Item.job_pk == Job.id)
            .where(Item.source_ref == document_id, Job.user_id == user.user_id)
            .limit(1)
        )
        if job_id is not None:
            raise ConflictError(
                f"Upload {document_id!r} is used by job {job_id!r}: delete the job instead"
            )
        out = Purged()
        delete_uploads(s, [row], out)
    finish(ctx, out)
    return UploadDeleted(document_id=document_id)
