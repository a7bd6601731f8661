"""Bodies of jobs, their items, transcripts and speakers."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from ragcast.api.schemas.common import (
    JobState,
)


class JobAccepted(BaseModel):
    """Answer of ``POST /process``."""

    success: bool = True
    job_id: str
    message: str
    websocket_url: str
    estimated_time: str


class JobResult(BaseModel):
    """Totals of a finished job."""

    total_items: int
    completed_items: int
    failed_items: int
    processing_time: float


class JobStatus(BaseModel):
    """Answer of ``GET /job/{job_id}/status``."""

    job_id: str
    status: JobState
    progress: float
    stage: str
    content_processed: int
    total_content: int
    embeddings: int
    error: str | None = None
    result: JobResult | None = None


class JobSummary(JobStatus):
    """A job in the job list."""

    platform: str
    input_method: str
    embedding_model: str
    vector_db: str
    created_at: str


class JobList(BaseModel):
    """Answer of ``GET /jobs``: one page, newest first."""

    jobs: list[JobSummary]
    total: int
    limit: int
    offset: int


class ItemStatus(BaseModel):
    """One content item of a job, with its own stage and error."""

    index: int
    content_id: str
    source_type: str
    source: str
    title: str | None
    url: str | None
    status: str
    stage: str
    transcript_source: str | None
    duration_s: float | None
    chunks: int
    tokens: int
    attempts: int
    error: str | None
    language: str | None = Field(default=None, description="Spoken or written language")
    language_probability: float | None = Field(
        default=None, description="How sure detection was; null when the job named it"
    )
    warnings: list[str] = Field(default_factory=list, description="What the checks noticed")


class ItemList(BaseModel):
    """Answer of ``GET /job/{job_id}/items``: one page of a job's items, in index order."""

    job_id: str
    items: list[ItemStatus]
    total: int = Field(description="Items that match (all of the job's without `status`)")
    limit: int = Field(description="The page size asked for")
    offset: int = Field(description="How many matching items come before this page")
    next_after: int | None = Field(
        description="Pass as `after` for the next page; null on the last page"
    )


class SpeakerName(BaseModel):
    """A speaker label of an item and what it is called (the label until named)."""

    label: str = Field(description="`SPEAKER_00`, `SPEAKER_01`, ... in order of first words")
    name: str


class VoiceMatch(BaseModel):
    """The voice of the user's speaker library that named a speaker when diarized."""

    name: str
    score: float = Field(description="Cosine similarity of the two voices (-1..1)")


class TranscriptSpeaker(SpeakerName):
    """A speaker of a transcript, and the library voice that recognised it, if one did."""

    recognised: VoiceMatch | None = None


class TranscriptOverlap(BaseModel):
    """A stretch where two or more speakers talk at once."""

    start: float
    end: float
    speakers: list[str] = Field(description="Names, or labels while unnamed")


class TranscriptWord(BaseModel):
    """One word with its time span and speaker."""

    text: str
    start: float | None
    end: float | None
    speaker: str | None = None


class TranscriptSegment(BaseModel):
    """A segment: one speaker's run of words (a Whisper segment, a cue, a paragraph)."""

    start: float | None
    end: float | None
    text: str
    speaker: str | None = Field(default=None, description="Name, or label while unnamed")
    words: list[TranscriptWord] = Field(default_factory=list)


class ItemTranscript(BaseModel):
    """Answer of ``GET /job/{job_id}/items/{index}/transcript?format=json``."""

    job_id: str
    index: int
    content_id: str
    source: str = Field(description="`asr`, `captions` or `document`")
    language: str | None
    duration_s: float | None
    speakers: list[TranscriptSpeaker] = Field(
        default_factory=list, description="Empty when the job did not ask for `diarize`"
    )
    overlaps: list[TranscriptOverlap] = Field(
        default_factory=list, description="Overlapped speech, where the diarizer found any"
    )
    segments: list[TranscriptSegment]
    media_url: str | None = Field(
        default=None,
        description="A signed, expiring link to the item's recording that a browser can "
        "play without the API key (`GET /media/{content_id}`; add `#t=93` to start at a "
        "segment); null when ragcast keeps no recording of it.",
    )


class ItemSpeakers(BaseModel):
    """Answer of ``PATCH /job/{job_id}/items/{index}/speakers``."""

    job_id: str
    index: int
    speakers: list[SpeakerName]
    updated_chunks: int = Field(description="Chunks whose speaker metadata was rewritten")


class JobCancelled(BaseModel):
    """Answer of ``POST /job/{job_id}/cancel``."""

    success: bool = True
    job_id: str
    status: JobState


class JobDeleted(BaseModel):
    """Answer of ``DELETE /job/{job_id}``."""

    success: bool = True
    job_id: str
    deleted_items: int
    deleted_exports: int
    deleted_uploads: int
    deleted_vector_contents: int = Field(
        description="Contents whose vectors were removed (none other of the user's jobs held them)"
    )


class LibraryVoice(BaseModel):
    """A name in the user's speaker library and how much of their voice is kept."""

    name: str
    samples: int = Field(description="Named speakers of items the voice was kept from")
    speech_s: float = Field(description="Seconds of their speech the voice is made of")
    models: list[str] = Field(description="Speaker-embedding models the voice is kept in")
    created_at: datetime
    updated_at: datetime


class SpeakerLibrary(BaseModel):
    """Answer of ``GET /speakers``."""

    speakers: list[LibraryVoice]
    threshold: float = Field(description="Cosine similarity at which a voice names a speaker")


class VoiceForgotten(BaseModel):
    """Answer of ``DELETE /speakers/{name}``."""

    name: str
    forgotten: int = Field(description="Kept samples of the voice that were deleted")
