"""``POST /ask``: an answer from the user's recordings, each claim cited to its moment.

The passages are found by the same search as ``POST /search`` (the same function, the
same user scoping); the answer is built by :mod:`ragcast.retrieval.answers`. With
``stream`` the answer comes as server-sent events: ``citations`` (the passages it may
cite), ``delta`` (``{"text": ...}`` pieces), then ``done`` (the whole answer body) or
``error`` (the contract's error body).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from ragcast.api.deps import AskUser, Ctx
from ragcast.api.errors import error_body
from ragcast.api.routes.jobs import user_job
from ragcast.api.routes.media import media_links
from ragcast.api.routes.search import hit_of, query_of
from ragcast.api.schemas import error_responses
from ragcast.api.schemas.answers import AnswerPublic, AskQuery, Citation
from ragcast.errors import ValidationError
from ragcast.providers.llms.base import Llm, LlmUnavailable
from ragcast.retrieval.answers import (
    RELEVANT,
    Answer,
    Source,
    extractive,
    generative,
    numbered,
    question_language,
    sentences,
    stream_generative,
)
from ragcast.retrieval.search import search

router = APIRouter(tags=["answers"])


def citation_of(source: Source, links: dict[str, str]) -> Citation:
    """A cited passage as the API answers it."""
    content = str(source.hit.metadata.get("content_id", ""))
    hit = hit_of(source.hit, None, links.get(content))
    passage = hit.context
    return Citation(
        n=source.n,
        text=passage.text if passage is not None else hit.text,
        title=hit.title,
        source=hit.source,
        job_id=hit.job_id,
        content_id=hit.content_id,
        start_s=passage.start_s if passage is not None else hit.start_s,
        end_s=passage.end_s if passage is not None else hit.end_s,
        deep_link=hit.deep_link,
        media_url=hit.media_url,
        speaker=hit.speaker,
        language=hit.language,
        score=hit.score,
    )


def public(answer: Answer, links: dict[str, str]) -> AnswerPublic:
    """An answer as the API answers it."""
    return AnswerPublic(
        answered=answer.answered,
        answer=answer.answer,
        mode=answer.mode,
        model=answer.model,
        citations=[citation_of(s, links) for s in answer.citations],
    )


@router.post(
    "/ask",
    response_model=AnswerPublic,
    operation_id="ask",
    responses={
        **error_responses(400, 401, 404, 413, 429, 503),
        200: {"content": {"text/event-stream": {}}},
    },
)
async def ask(body: AskQuery, user: AskUser, ctx: Ctx, request: Request) -> Any:
    """Answer a question from the user's recordings, citing passages as ``[n]``.

    ``extractive`` (the default without an LLM) quotes the sentences of the best passages
    that answer the question; ``generative`` (the default with ``RAGCAST_LLM_BASE_URL``)
    has the LLM answer from the numbered passages, and every ``[n]`` naming no passage is
    dropped. When no passage is relevant enough, ``answered`` is false, the answer says it
    is not in the recordings and nothing is cited. ``fallback`` answers extractively when
    the LLM is down (else ``503 upstream_unavailable``).
    """
    llm: Llm | None = request.app.state.llm
    mode = body.mode or ("generative" if llm is not None else "extractive")
    if mode == "generative" and llm is None:
        raise ValidationError(
            "mode", "no LLM is configured (RAGCAST_LLM_BASE_URL); ask for 'extractive'"
        )
    q = query_of(body.search_query())
    if body.job_id is not None:
        job_id = body.job_id

        def check() -> None:
            with ctx.db.session() as s:
                user_job(s, user.user_id, job_id)  # 404 for unknown or foreign jobs

        await run_in_threadpool(check)
    hits = await run_in_threadpool(search, ctx, user.user_id, q)
    sources = numbered(hits, RELEVANT if body.min_score is None else body.min_score)
    contents = [str(s.hit.metadata.get("content_id", "")) for s in sources]
    links = await run_in_threadpool(media_links, ctx, request, user, contents) if sources else {}
    language = question_language(body.query, body.language)
    model = llm if mode == "generative" else None
    if body.stream:
        events = _events(body, model, sources, language, links)
        return StreamingResponse(
            events,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    def answer() -> Answer:
        if model is None:
            return extractive(body.query, sources, language)
        try:
            return generative(model, body.query, sources, language)
        except LlmUnavailable:
            if not body.fallback:
                raise
            return extractive(body.query, sources, language)

    return public(await run_in_threadpool(answer), links)


def sse(event: str, data: Any) -> str:
    """One server-sent event."""
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def _events(
    body: AskQuery, llm: Llm | None, sources: list[Source], language: str, links: dict[str, str]
) -> Iterator[str]:
    """The streamed answer (run in a worker thread by the response)."""
    if llm is None:
        yield from _extractive_events(body.query, sources, language, links)
        return
    yield sse("citations", [citation_of(s, links).model_dump() for s in sources])
    said = False
    try:
        for kind, value in stream_generative(llm, body.query, sources, language):
            if kind == "delta":
                said = True
                yield sse("delta", {"text": value})
            elif isinstance(value, Answer):
                yield sse("done", public(value, links).model_dump())
    except LlmUnavailable as exc:
        if body.fallback and not said:
            fallback = extractive(body.query, sources, language)
            for piece in _pieces(fallback.answer):
                yield sse("delta", {"text": piece})
            yield sse("done", public(fallback, links).model_dump())
            return
        yield sse("error", error_body(exc.code, exc.message))


def _extractive_events(
    question: str, sources: list[Source], language: str, links: dict[str, str]
) -> Iterator[str]:
    answer = extractive(question, sources, language)
    yield sse("citations", [citation_of(s, links).model_dump() for s in answer.citations])
    for piece in _pieces(answer.answer):
        yield sse("delta", {"text": piece})
    yield sse("done", public(answer, links).model_dump())


def _pieces(text: str) -> list[str]:
    """An extractive answer streamed sentence by sentence (each with its ``[n]``)."""
    parts = sentences(text)
    return [p if i == 0 else " " + p for i, p in enumerate(parts)] or [text]
