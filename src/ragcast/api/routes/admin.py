"""``DELETE /cleanup``: remove old finished jobs with their exports and files (admin)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import delete, select

from ragcast.api.deps import AdminUser, Ctx
from ragcast.api.schemas import CleanupResult, error_responses
from ragcast.pipeline.progress import TERMINAL_JOB
from ragcast.store.models import Export, Item, Job, Upload

router = APIRouter(tags=["admin"])


@router.delete(
    "/cleanup",
    response_model=CleanupResult,
    operation_id="cleanupJobs",
    responses=error_responses(400, 401, 403, 429),
)
def cleanup(
    user: AdminUser,
    ctx: Ctx,
    older_than_hours: Annotated[float | None, Query(ge=0, le=24 * 365 * 10)] = None,
) -> CleanupResult:
    """Delete finished jobs older than ``older_than_hours`` (default from settings).

    Export files and uploads no remaining job refers to go with them; vectors stay in
    the vector database, since the same content may serve other jobs.
    """
    hours = ctx.settings.cleanup_after_hours if older_than_hours is None else older_than_hours
    cutoff = datetime.now(UTC) - timedelta(hours=hours)
    files: list[str] = []
    with ctx.db.session() as s:
        jobs = s.scalars(
            select(Job).where(Job.status.in_(TERMINAL_JOB), Job.finished_at <= cutoff)
        ).all()
        ids = [j.id for j in jobs]
        if not ids:
            return CleanupResult(deleted_count=0)
        files += [p for p in s.scalars(select(Export.path).where(Export.job_pk.in_(ids))) if p]
        docs = set(s.scalars(select(Item.source_ref).where(Item.job_pk.in_(ids))))
        still_used = set(
            s.scalars(
                select(Item.source_ref).where(Item.job_pk.not_in(ids), Item.source_ref.in_(docs))
            )
        )
        for up in s.scalars(select(Upload).where(Upload.document_id.in_(docs - still_used))):
            files.append(up.path)
            s.delete(up)
        s.execute(delete(Export).where(Export.job_pk.in_(ids)))
        for job in jobs:
            s.delete(job)
    for path in files:
        Path(path).unlink(missing_ok=True)
    return CleanupResult(deleted_count=len(ids))
