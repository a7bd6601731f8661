"""``POST /search``: the user's best chunks for a query, with time spans and deep links."""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from ragcast.api.deps import Ctx, CurrentUser
from ragcast.api.routes.jobs import user_job
from ragcast.api.routes.media import media_links
from ragcast.api.schemas import (
    SearchHit,
    SearchPassage,
    SearchQuery,
    SearchResults,
    error_responses,
)
from ragcast.errors import ConfigurationError, ValidationError
from ragcast.pipeline.speakers import split_speakers
from ragcast.retrieval.filters import Filters
from ragcast.retrieval.links import deep_link
from ragcast.retrieval.rerank import reranker
from ragcast.retrieval.search import Hit, Query, search

router = APIRouter(tags=["search"])


def query_of(body: SearchQuery) -> Query:
    """The search a request body asks for; a reversed date range is a 400."""
    after = date.fromisoformat(body.uploaded_after) if body.uploaded_after else None
    before = date.fromisoformat(body.uploaded_before) if body.uploaded_before else None
    if after is not None and before is not None and after > before:
        raise ValidationError("uploaded_after", "is later than uploaded_before")
    filters = Filters(
        job_id=body.job_id,
        content_id=body.content_id,
        platform=body.platform,
        language=body.language,
        channel=body.channel,
        speaker=body.speaker,
        uploaded_after=after,
        uploaded_before=before,
        min_confidence=body.min_confidence,
    )
    return Query(
        text=body.query,
        top_k=body.top_k,
        mode=body.mode,
        filters=filters,
        context=body.context,
        rerank=body.rerank,
        min_score=body.min_score or 0.0,
    )


def hit_of(h: Hit, job_id: str | None, media_url: str | None = None) -> SearchHit:
    """A search hit as the API answers it; ``media_url`` is the signed link to its
    recording, where ragcast keeps one (an upload's ``deep_link`` is that link, at the
    hit's start: ``#t=93``)."""
    m = h.metadata
    link = deep_link(m.get("platform"), m.get("url"), m.get("start_s"))
    if link is None and media_url is not None:
        link = media_moment(media_url, m.get("start_s"))
    return SearchHit(
        score=round(h.score, 6),
        text=h.text,
        start_s=m.get("start_s"),
        end_s=m.get("end_s"),
        job_id=job_id or str(m.get("job_id", "")),
        content_id=str(m.get("content_id", "")),
        chunk_index=int(m.get("chunk_index", 0)),
        source_type=str(m.get("source_type", "")),
        source=str(m.get("source", "")),
        title=m.get("title"),
        url=m.get("url"),
        platform=m.get("platform"),
        language=m.get("language"),
        channel=m.get("channel"),
        speaker=m.get("speaker"),
        speakers=split_speakers(m.get("speakers")),
        upload_date=m.get("upload_date"),
        confidence=_confidence(m.get("confidence")),
        deep_link=link,
        media_url=media_url,
        context=(
            None
            if h.context is None
            else SearchPassage(
                text=h.context.text,
                start_s=h.context.start_s,
                end_s=h.context.end_s,
                first_chunk=h.context.first_chunk,
                last_chunk=h.context.last_chunk,
            )
        ),
    )


def media_moment(media_url: str, start_s: object) -> str:
    """The media link opened at a moment: a media fragment, ``#t=93`` (whole seconds,
    rounded down to hear the start, as the platforms' deep links)."""
    if isinstance(start_s, bool) or not isinstance(start_s, int | float) or start_s < 0:
        return media_url
    return f"{media_url}#t={int(start_s)}"


def _confidence(value: object) -> float | None:
    """A metadata confidence as a number (stores answer what they keep), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return round(float(value), 4)


@router.post(
    "/search",
    response_model=SearchResults,
    operation_id="search",
    responses=error_responses(400, 401, 404, 413, 429),
)
async def search_chunks(
    body: SearchQuery, user: CurrentUser, ctx: Ctx, request: Request
) -> SearchResults:
    """Search the user's indexed chunks: hybrid (lexical and dense, fused) by default.

    Filters narrow the search to one job, content, platform, language, channel, speaker
    or upload date range; ``context`` returns each hit with its neighbouring chunks; ``rerank``
    reorders the best candidates with the server's reranker. Each hit links to its
    moment in the source (``deep_link``), and to its recording where ragcast keeps one
    (``media_url``, a signed link a browser can play: ``GET /media/{content_id}``).
    """
    q = query_of(body)
    if body.rerank:
        try:
            await run_in_threadpool(reranker, ctx.settings)
        except ConfigurationError as exc:
            raise ValidationError("rerank", exc.message) from exc
    if body.job_id is not None:
        job_id = body.job_id

        def check() -> None:
            with ctx.db.session() as s:
                user_job(s, user.user_id, job_id)  # 404 for unknown or foreign jobs

        await run_in_threadpool(check)
    hits = await run_in_threadpool(search, ctx, user.user_id, q)
    contents = [str(h.metadata.get("content_id", "")) for h in hits]
    links = await run_in_threadpool(media_links, ctx, request, user, contents) if hits else {}
    return SearchResults(
        query=body.query,
        mode=body.mode,
        results=[hit_of(h, body.job_id, links.get(c)) for h, c in zip(hits, contents, strict=True)],
    )
