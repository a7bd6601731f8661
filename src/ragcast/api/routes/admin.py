"""``DELETE /cleanup``: remove old finished jobs with their exports and files (admin)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request
from sqlalchemy import select

from ragcast.api.deps import AdminUser, Ctx
from ragcast.api.schemas import CleanupResult, error_responses
from ragcast.pipeline.progress import TERMINAL_JOB
from ragcast.pipeline.purge import delete_jobs, delete_uploads, finish, unused_uploads
from ragcast.store.models import Job

router = APIRouter(tags=["admin"])
log = logging.getLogger(__name__)


@router.delete(
    "/cleanup",
    response_model=CleanupResult,
    operation_id="cleanupJobs",
    responses=error_responses(400, 401, 403, 413, 429),
)
def cleanup(
    user: AdminUser,
    ctx: Ctx,
    request: Request,
    older_than_hours: Annotated[float | None, Query(ge=0, le=24 * 365 * 10)] = None,
) -> CleanupResult:
    """Delete finished jobs older than ``older_than_hours`` (default from settings).

    Export files and uploads no remaining job refers to go with them, and so do uploads
    older than the cutoff that no job ever used; vectors stay in the vector database,
    since the same content may serve other jobs (``DELETE /job/{job_id}`` removes them).
    """
    hours = ctx.settings.cleanup_after_hours if older_than_hours is None else older_than_hours
    cutoff = datetime.now(UTC) - timedelta(hours=hours)
    with ctx.db.session() as s:
        jobs = s.scalars(
            select(Job).where(Job.status.in_(TERMINAL_JOB), Job.finished_at <= cutoff)
        ).all()
        deleted = [j.id for j in jobs]
        out = delete_jobs(s, list(jobs), vectors=False)
        s.flush()
        delete_uploads(s, unused_uploads(s, user_id=None, before=cutoff), out)
    for job_pk in deleted:
        request.app.state.statuses.invalidate(job_pk)  # their statuses answer 404 now
    finish(ctx, out)
    log.info("cleanup: %d jobs and %d uploads older than %.1f h", out.jobs, out.uploads, hours)
    return CleanupResult(deleted_count=out.jobs)  # the contract's body, exactly
