"""An item's transcript (json, srt, vtt, txt) and the names of its speakers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request
from fastapi.responses import Response
from sqlalchemy import delete, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from ragcast.api.deps import Ctx, CurrentUser, WriteUser
from ragcast.api.routes.jobs import JobIdPath, user_job
from ragcast.api.routes.media import media_links
from ragcast.api.schemas import ItemSpeakers, ItemTranscript, SpeakerName, error_responses
from ragcast.context import Context
from ragcast.errors import ConflictError, NotFoundError, UpstreamUnavailableError, ValidationError
from ragcast.exports.transcript import MEDIA_TYPES, TranscriptFormat, render, transcript_dict
from ragcast.pipeline import voices
from ragcast.pipeline.speakers import (
    chunk_speaker_rows,
    display_name,
    name_issue,
    speaker_fields,
)
from ragcast.pipeline.types import Transcript as TranscriptData
from ragcast.retrieval.layout import job_tenant
from ragcast.store.models import Chunk, ChunkSpeaker, Item, Job, Transcript

router = APIRouter(tags=["transcripts"])

IndexPath = Annotated[int, Path(ge=0, le=1_000_000, description="The item's `index`")]


def _item(
    s: Session, user_id: int, job_id: str, index: int, *, lock: bool = False
) -> tuple[Job, Item]:
    job = user_job(s, user_id, job_id)
    query = select(Item).where(Item.job_pk == job.id, Item.index == index)
    # two renames of one item at once must not lose a name: the row is locked (PostgreSQL)
    item = s.scalar(query.with_for_update() if lock else query)
    if item is None:
        raise NotFoundError(f"job {job_id!r} has no item {index}")
    return job, item


def _transcript(s: Session, item: Item) -> TranscriptData:
    row = s.get(Transcript, item.id)
    if row is None:
        raise ConflictError(
            f"item {item.index} has no transcript yet (status {item.status}, stage {item.stage})"
        )
    return TranscriptData.from_dict(row.data)


@router.get(
    "/job/{job_id}/items/{index}/transcript",
    response_model=ItemTranscript,
    operation_id="getItemTranscript",
    responses={
        200: {
            "content": {
                "application/x-subrip": {"schema": {"type": "string"}},
                "text/vtt": {"schema": {"type": "string"}},
                "text/plain": {"schema": {"type": "string"}},
            },
            "description": "JSON, or the text of the asked format",
        },
        **error_responses(400, 401, 404, 409, 429),
    },
)
def get_item_transcript(
    job_id: JobIdPath,
    index: IndexPath,
    user: CurrentUser,
    ctx: Ctx,
    request: Request,
    fmt: Annotated[
        TranscriptFormat,
        Query(alias="format", description="`json` (default), `srt`, `vtt` or `txt`"),
    ] = "json",
) -> Any:
    """The whole transcript of one item, with speakers (named, or labelled) where the job
    diarized it; ``srt`` and ``vtt`` put the speaker before each cue's text. The JSON
    carries ``media_url``, a signed link to the item's recording, while ragcast keeps one."""
    with ctx.db.session() as s:
        job, item = _item(s, user.user_id, job_id, index)
        data = _transcript(s, item)
        names = dict(item.speaker_map or {})
        content_id = item.content_id
    if fmt == "json":
        return ItemTranscript(
            job_id=job.job_id,
            index=index,
            content_id=content_id,
            media_url=media_links(ctx, request, user, [content_id]).get(content_id),
            **transcript_dict(data, names),
        )
    filename = f"{job.job_id}-{index}.{fmt}"
    return Response(
        render(data, names, fmt),
        media_type=MEDIA_TYPES[fmt],
        headers={"content-disposition": f'inline; filename="{filename}"'},
    )


def _clean_names(given: dict[str, str | None], labels: list[str]) -> dict[str, str | None]:
    """The names asked for, checked; ``None`` (or an empty name) forgets a name."""
    if not given:
        raise ValidationError("body", 'name at least one speaker: {"SPEAKER_00": "Host"}')
    if len(given) > len(labels):
        raise ValidationError("body", f"the item has {len(labels)} speakers")
    out: dict[str, str | None] = {}
    for label, name in given.items():
        if label not in labels:
            known = ", ".join(labels) or "none: the item was not diarized"
            raise ValidationError(label[:64], f"not a speaker of this item (speakers: {known})")
        if name is None or not name.strip():
            out[label] = None
            continue
        issue = name_issue(name)  # before spaces are collapsed: a line break is refused
        if issue is not None:
            raise ValidationError(label, issue)
        out[label] = " ".join(name.split())
    return out


def _rename(
    ctx: Context, user_id: int, job_id: str, index: int, given: dict[str, Any]
) -> ItemSpeakers:
    with ctx.db.session() as s:
        job, item = _item(s, user_id, job_id, index, lock=True)
        data = _transcript(s, item)
        labels = list(data.speakers or [])
        names = dict(item.speaker_map or {})
        cleaned = _clean_names(given, labels)
        for label, name in cleaned.items():
            if name is None:
                names.pop(label, None)
            else:
                names[label] = name
        voices.remember(s, user_id, item, data, cleaned)
        chunks = list(s.scalars(select(Chunk).where(Chunk.item_id == item.id)))
        for chunk in chunks:
            chunk.speaker = display_name(chunk.speakers[0] if chunk.speakers else None, names)
        if chunks:
            ids = [c.id for c in chunks]
            s.execute(delete(ChunkSpeaker).where(ChunkSpeaker.chunk_id.in_(ids)))
            s.add_all(chunk_speaker_rows(chunks, names))
        if chunks and _holds_vectors(s, job, item):
            _update_vectors(ctx, job, item, chunks, names)
        item.speaker_map = names or None
        return ItemSpeakers(
            job_id=job.job_id,
            index=index,
            speakers=[SpeakerName(label=x, name=names.get(x, x)) for x in labels],
            updated_chunks=len(chunks),
        )


def _holds_vectors(s: Session, job: Job, item: Item) -> bool:
    """Whether the item's chunks are the vectors its content has in the job's collection:
    the user's latest indexed item of that content there (an item indexed later by another
    job, cut differently, owns the same record ids and keeps its own speakers)."""
    if item.stage != "indexed":
        return False
    latest = s.scalar(
        select(Item.id)
        .join(Job, Job.id == Item.job_pk)
        .where(
            Job.user_id == job.user_id,
            Job.vector_db == job.vector_db,
            Job.collection == job.collection,
            Item.content_id == item.content_id,
            Item.stage == "indexed",
        )
        .order_by(Item.id.desc())
        .limit(1)
    )
    return latest == item.id


def _update_vectors(
    ctx: Context, job: Job, item: Item, chunks: list[Chunk], names: dict[str, str]
) -> None:
    """Rewrite the chunks' speaker metadata in the vector store (no re-embedding)."""
    values = {
        f"{item.content_id}:{c.chunk_index}": speaker_fields(c.speaker, c.speakers, names)
        for c in chunks
    }
    try:
        store = ctx.providers.vector_store(job.vector_db)
        store.update_metadata(
            job.collection, values, tenant=job_tenant(job.collection, job.user_id)
        )
    except Exception as exc:  # an outage: nothing is changed, the client may retry
        raise UpstreamUnavailableError(
            f"the vector database could not be updated, no name was changed: {exc}"[:300]
        ) from exc


@router.patch(
    "/job/{job_id}/items/{index}/speakers",
    response_model=ItemSpeakers,
    operation_id="nameItemSpeakers",
    responses=error_responses(400, 401, 404, 409, 413, 429, 503),
)
async def name_item_speakers(
    job_id: JobIdPath,
    index: IndexPath,
    user: WriteUser,
    ctx: Ctx,
    names: Annotated[
        dict[str, str | None],
        Body(
            description='Label to name (`{"SPEAKER_00": "Host"}`); null forgets a name',
            examples=[{"SPEAKER_00": "Host", "SPEAKER_01": "Guest"}],
        ),
    ],
) -> ItemSpeakers:
    """Name an item's speakers: transcripts, exports, search hits and the vector store's
    metadata then show the names (the vectors are not recomputed). Search filters by the
    new names (``speaker``). A name is one visible line of 1-64 characters: no control or
    invisible format character, line break, ``-->`` or ``;``. Counted in the ``write``
    rate limit."""
    return await run_in_threadpool(_rename, ctx, user.user_id, job_id, index, names)
