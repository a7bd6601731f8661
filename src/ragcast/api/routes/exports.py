"""Exports: start one, follow it, download the file (streamed, with ``Range``)."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from sqlalchemy import select

from ragcast.api.deps import Ctx, CurrentUser, ExportUser
from ragcast.api.routes.jobs import user_job
from ragcast.api.schemas import (
    ID_PATTERN,
    ExportAccepted,
    ExportCreate,
    ExportStatus,
    error_responses,
)
from ragcast.errors import ConflictError, NotFoundError
from ragcast.exports.meta import empty_job_warning
from ragcast.pipeline.progress import TERMINAL_JOB
from ragcast.store.models import Export

router = APIRouter(tags=["exports"])

PREFIX = "/api/public/bulk"
ExportIdPath = Annotated[str, PathParam(pattern=ID_PATTERN, max_length=128)]


def _user_export(ctx: Ctx, user_id: int, export_id: str) -> Export:
    with ctx.db.session() as s:
        exp = s.scalar(
            select(Export).where(Export.user_id == user_id, Export.export_id == export_id)
        )
    if exp is None:
        raise NotFoundError(f"Export {export_id!r} not found")
    return exp


@router.post(
    "/export",
    response_model=ExportAccepted,
    operation_id="startExport",
    responses=error_responses(400, 401, 404, 409, 413, 429),
)
def start_export(
    body: ExportCreate, user: ExportUser, ctx: Ctx, request: Request
) -> ExportAccepted:
    """Export a finished job's chunks; ``export_id`` is generated when absent."""
    export_id = body.export_id or f"export-{secrets.token_hex(8)}"
    with ctx.db.session() as s:
        job = user_job(s, user.user_id, body.job_id)
        exp = s.scalar(
            select(Export).where(Export.user_id == user.user_id, Export.export_id == export_id)
        )
        created = exp is None
        if exp is None:
            if job.status not in TERMINAL_JOB:
                raise ConflictError(
                    f"Job {body.job_id!r} is still {job.status}; export it once it has finished"
                )
            exp = Export(
                export_id=export_id, user_id=user.user_id, job_pk=job.id, format=body.format
            )
            s.add(exp)
            s.flush()
        elif exp.job_pk != job.id or exp.format != body.format:
            raise ConflictError(f"export_id {export_id!r} is already used by another export")
        export_pk = exp.id
    if created:
        request.app.state.runner.export.send(export_pk)
    return ExportAccepted(
        export_id=export_id,
        message="Export started successfully",
        status_url=f"{PREFIX}/export/{export_id}/status",
    )


@router.get(
    "/export/{export_id}/status",
    response_model=ExportStatus,
    operation_id="getExportStatus",
    responses=error_responses(400, 401, 404, 429),
)
def get_export_status(export_id: ExportIdPath, user: CurrentUser, ctx: Ctx) -> ExportStatus:
    """Progress of an export; ``download_url``, size and ``warnings`` once it is completed."""
    exp = _user_export(ctx, user.user_id, export_id)
    done = exp.status == "completed"
    warnings: list[str] = []
    if done:
        with ctx.db.session() as s:
            empty = empty_job_warning(s, exp.job_pk)
        warnings = [empty] if empty else []
    return ExportStatus(
        export_id=exp.export_id,
        status=exp.status,  # type: ignore[arg-type]
        progress=exp.progress,
        download_url=f"{PREFIX}/download/{exp.export_id}" if done else None,
        filename=exp.filename if done else None,
        file_size=exp.file_size if done else None,
        error=exp.error,
        warnings=warnings,
    )


@router.get(
    "/download/{export_id}",
    operation_id="downloadExport",
    response_class=FileResponse,
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "The export file"},
        206: {"content": {"application/octet-stream": {}}, "description": "A byte range"},
        **error_responses(400, 401, 404, 409, 429),
    },
)
def download_export(export_id: ExportIdPath, user: CurrentUser, ctx: Ctx) -> FileResponse:
    """The export file, streamed; ``Range`` requests are honoured."""
    exp = _user_export(ctx, user.user_id, export_id)
    if exp.status != "completed" or not exp.path:
        raise ConflictError(f"Export {export_id!r} is {exp.status}, not ready for download")
    if not Path(exp.path).is_file():
        raise NotFoundError(f"The file of export {export_id!r} no longer exists")
    return FileResponse(
        exp.path,
        media_type="application/octet-stream",
        filename=exp.filename,
        content_disposition_type="attachment",
    )
