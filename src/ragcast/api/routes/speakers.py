"""The user's speaker library: the voices they named, recognised in later recordings."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from starlette.concurrency import run_in_threadpool

from ragcast.api.deps import Ctx, CurrentUser, WriteUser
from ragcast.api.schemas import LibraryVoice, SpeakerLibrary, VoiceForgotten, error_responses
from ragcast.context import Context
from ragcast.errors import NotFoundError, ValidationError
from ragcast.pipeline import voices

router = APIRouter(tags=["speakers"])

NamePath = Annotated[str, Path(description="A name of the library (1-100 characters)")]


@router.get(
    "/speakers",
    response_model=SpeakerLibrary,
    operation_id="listSpeakers",
    responses=error_responses(401, 429),
)
async def list_speakers(user: CurrentUser, ctx: Ctx) -> SpeakerLibrary:
    """The voices of the user's speaker library: every name given to a diarized speaker
    (``PATCH /job/{job_id}/items/{index}/speakers``) keeps that speaker's voice, and later
    diarized items name a speaker whose voice matches one of them."""

    def read() -> SpeakerLibrary:
        with ctx.db.session() as s:
            found = voices.library(s, user.user_id)
        return SpeakerLibrary(
            speakers=[
                LibraryVoice(
                    name=v.name,
                    samples=v.samples,
                    speech_s=v.speech_s,
                    models=v.models,
                    created_at=v.created_at,
                    updated_at=v.updated_at,
                )
                for v in found
            ],
            threshold=ctx.settings.voice_match_threshold,
        )

    return await run_in_threadpool(read)


@router.delete(
    "/speakers/{name}",
    response_model=VoiceForgotten,
    operation_id="forgetSpeaker",
    responses=error_responses(400, 401, 404, 429),
)
async def forget_speaker(name: NamePath, user: WriteUser, ctx: Ctx) -> VoiceForgotten:
    """Forget a voice: later items are no longer named by it. Names already given to
    items stay. Counted in the ``write`` rate limit."""
    if not 1 <= len(name) <= voices.NAME_MAX:
        raise ValidationError("name", f"a library name has 1-{voices.NAME_MAX} characters")
    return await run_in_threadpool(_forget, ctx, user.user_id, name)


def _forget(ctx: Context, user_id: int, name: str) -> VoiceForgotten:
    with ctx.db.session() as s:
        count = voices.forget(s, user_id, name)
    if not count:
        raise NotFoundError(f"the speaker library has no voice named {name!r}")
    return VoiceForgotten(name=name, forgotten=count)
