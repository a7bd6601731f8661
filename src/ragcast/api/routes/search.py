"""``POST /search``: the user's chunks nearest to a query, with time spans."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from ragcast.api.deps import Ctx, CurrentUser
from ragcast.api.routes.jobs import user_job
from ragcast.api.schemas import SearchHit, SearchQuery, SearchResults, error_responses
from ragcast.pipeline.links import deep_link
from ragcast.search import search

router = APIRouter(tags=["search"])


@router.post(
    "/search",
    response_model=SearchResults,
    operation_id="search",
    responses=error_responses(400, 401, 404, 413, 429),
)
async def search_chunks(body: SearchQuery, user: CurrentUser, ctx: Ctx) -> SearchResults:
    """Search the user's indexed chunks (one job's with ``job_id``; filters by content id
    and platform); each hit links to its moment in the source (``deep_link``)."""
    if body.job_id is not None:
        job_id = body.job_id

        def check() -> None:
            with ctx.db.session() as s:
                user_job(s, user.user_id, job_id)  # 404 for unknown or foreign jobs

        await run_in_threadpool(check)
    hits = await run_in_threadpool(
        search,
        ctx,
        user.user_id,
        body.query,
        job_id=body.job_id,
        top_k=body.top_k,
        content_id=body.content_id,
        platform=body.platform,
        language=body.language,
    )
    return SearchResults(
        query=body.query,
        results=[
            SearchHit(
                score=round(h.score, 6),
                text=h.text,
                start_s=h.metadata.get("start_s"),
                end_s=h.metadata.get("end_s"),
                job_id=body.job_id or str(h.metadata.get("job_id", "")),
                content_id=str(h.metadata.get("content_id", "")),
                chunk_index=int(h.metadata.get("chunk_index", 0)),
                source_type=str(h.metadata.get("source_type", "")),
                source=str(h.metadata.get("source", "")),
                title=h.metadata.get("title"),
                url=h.metadata.get("url"),
                platform=h.metadata.get("platform"),
                language=h.metadata.get("language"),
                deep_link=deep_link(
                    h.metadata.get("platform"), h.metadata.get("url"), h.metadata.get("start_s")
                ),
            )
            for h in hits
        ],
    )
