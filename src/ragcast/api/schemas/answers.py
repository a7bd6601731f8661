"""Bodies of ``POST /ask``: a question, and an answer cited to the moment."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ragcast.api.schemas.search import SearchQuery, parse_day
from ragcast.spec import Platform, normalise_language


def _as_search(name: str) -> Any:
    """The field ``name`` of ``POST /search``'s body, with its limits and description."""
    return SearchQuery.model_fields[name]


class AskQuery(BaseModel):
    """Body of ``POST /ask``: the question, how many passages, the search's filters."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=4096, description="The question.")
    top_k: int = Field(default=6, ge=1, le=20, description="Passages to answer from.")
    context: int = Field(
        default=0, ge=0, le=5, description="Neighbouring chunks given with each passage."
    )
    mode: Literal["extractive", "generative"] | None = Field(
        default=None,
        description="`extractive` quotes the best sentences; `generative` has the server's "
        "LLM write the answer. Default: `generative` when an LLM is configured.",
    )
    language: str | None = Field(
        default=None,
        max_length=32,
        description="Language of the answer (ISO 639-1); default: the question's.",
    )
    recording_language: str | None = Field(
        default=None,
        max_length=32,
        description="Only passages in this language (the `language` filter of `/search`).",
    )
    stream: bool = Field(
        default=False,
        strict=True,
        description="Answer as `text/event-stream`: `citations`, `delta`..., `done` (or `error`).",
    )
    fallback: bool = Field(
        default=False,
        strict=True,
        description="When the LLM is unavailable, answer extractively instead of a 503.",
    )
    min_score: float | None = Field(
        default=None,
        ge=0,
        le=1,
        strict=True,
        allow_inf_nan=False,
        description="Only passages scoring at least this (0-1); default: the server's "
        "relevance floor.",
    )
    # the filters of POST /search, with its rules
    job_id: str | None = _as_search("job_id")
    content_id: str | None = _as_search("content_id")
    platform: Platform | None = _as_search("platform")
    channel: str | None = _as_search("channel")
    speaker: str | None = _as_search("speaker")
    uploaded_after: str | None = _as_search("uploaded_after")
    uploaded_before: str | None = _as_search("uploaded_before")
    min_confidence: float | None = _as_search("min_confidence")

    @field_validator("query")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("ask a question: the query is blank")
        return value

    @field_validator("language", "recording_language")
    @classmethod
    def _known_language(cls, value: str | None) -> str | None:
        if value is None:
            return None
        code = normalise_language(value)
        if code == "auto":
            raise ValueError("name a language code, not 'auto', or leave it out")
        return code

    @field_validator("uploaded_after", "uploaded_before")
    @classmethod
    def _a_date(cls, value: str | None) -> str | None:
        return None if value is None else parse_day(value).isoformat()

    def search_query(self) -> SearchQuery:
        """The search that finds the passages (validated as ``POST /search`` would)."""
        return SearchQuery(
            query=self.query,
            top_k=self.top_k,
            context=self.context,
            job_id=self.job_id,
            content_id=self.content_id,
            platform=self.platform,
            language=self.recording_language,
            channel=self.channel,
            speaker=self.speaker,
            uploaded_after=self.uploaded_after,
            uploaded_before=self.uploaded_before,
            min_confidence=self.min_confidence,
        )


class Citation(BaseModel):
    """A passage an answer cites as ``[n]``, with its moment in the recording."""

    n: int = Field(description="The number the answer cites it by: `[n]`.")
    text: str = Field(description="The passage (with its neighbours, given `context`).")
    title: str | None
    source: str
    job_id: str
    content_id: str
    start_s: float | None
    end_s: float | None
    deep_link: str | None = Field(description="The source opened at the passage's moment.")
    media_url: str | None = Field(default=None, description="Signed link to the recording.")
    speaker: str | None = None
    language: str | None = None
    score: float = Field(description="The passage's search score (0-1).")


class AnswerPublic(BaseModel):
    """Answer of ``POST /ask``."""

    success: bool = True
    answered: bool = Field(
        description="False when nothing in the recordings answers: `answer` then says so "
        "and there are no citations."
    )
    answer: str = Field(description="The answer, citing its passages as `[n]`.")
    mode: Literal["extractive", "generative"]
    model: str | None = Field(description="The LLM that wrote it (null when extractive).")
    citations: list[Citation]
