"""The job specification shared by the HTTP layer and the pipeline.

Provider and pipeline code read a job's options through here, never through
``ragcast.api``: the rules for an option live in one place whoever asks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from ragcast.text import CHINESE_SCRIPTS, ChineseScript

#: the languages Whisper transcribes (ISO 639-1, plus Whisper's ``haw`` and ``yue``)
LANGUAGES: frozenset[str] = frozenset(
    (
        "af am ar as az ba be bg bn bo br bs ca cs cy da de el en es et eu fa fi fo fr gl gu "
        "ha haw he hi hr ht hu hy id is it ja jw ka kk km kn ko la lb ln lo lt lv mg mi mk ml "
        "mn mr ms mt my ne nl nn no oc pa pl ps pt ro ru sa sd si sk sl sn so sq sr su sv sw "
        "ta te tg th tk tl tr tt uk ur uz vi yi yo zh yue"
    ).split()
)
#: ``settings.language`` when the language is detected per item
AUTO = "auto"

JinaTask = Literal[
    "retrieval.passage", "retrieval.query", "text-matching", "code.passage", "code.query"
]


class EmbeddingModelConfig(BaseModel):
    """The contract's ``embedding_model`` block; unknown keys (``label``) are kept."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(description="`local`, `jina-v4` or `gemini-exp`", min_length=1)
    label: str | None = None
    dimensions: int | None = Field(default=None, description="128-2048")
    max_tokens: int | None = Field(default=None, ge=1)
    jina_v4_task: JinaTask = "retrieval.passage"
    jina_v4_dimensions: int | None = None
    jina_v4_late_chunking: bool = True
    jina_v4_multi_vector: bool = False
    jina_v4_optimize_for_rag: bool = True
    jina_v4_truncate_at_max: bool = True


class VectorDbConfig(BaseModel):
    """The contract's ``vector_db`` block."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(description="`chroma`, `pinecone`, `qdrant` or `pgvector`", min_length=1)
    label: str | None = None


def normalise_language(value: str) -> str:
    """``"auto"`` or a known language code, lower-cased; ValueError names what is allowed.

    A region suffix (``pt-BR``, ``zh_Hans``) is dropped: Whisper transcribes by language.
    """
    if value.strip().lower() == AUTO:
        return AUTO
    base = caption_language(value.strip())
    if base not in LANGUAGES:
        raise ValueError(
            f"unknown language {value[:40]!r}: expected 'auto' or an ISO 639-1 code "
            "Whisper knows (en, de, zh, ja, sv, ...)"
        )
    return base


def job_language(request: dict[str, object]) -> str | None:
    """The language a stored job request names, or None when it is detected per item."""
    settings = request.get("settings")
    value = settings.get("language") if isinstance(settings, dict) else None
    if not isinstance(value, str) or value == AUTO:
        return None
    return value


def job_chinese_script(request: dict[str, object]) -> ChineseScript:
    """The script a stored job request wants Chinese text in (``as_spoken`` by default)."""
    settings = request.get("settings")
    value = settings.get("chinese_script") if isinstance(settings, dict) else None
    for script in CHINESE_SCRIPTS:
        if value == script:
            return script
    return "as_spoken"


def caption_language(key: str) -> str:
    """The language of a caption track key (``en-US`` -> ``en``, ``pt-BR`` -> ``pt``)."""
    return key.replace("_", "-").split("-", 1)[0].lower()


#: the most speakers a job may ask diarization to find
MAX_SPEAKERS = 32


@dataclass(frozen=True, slots=True)
class Diarize:
    """A job's diarization request: on, with optional bounds on the number of speakers."""

    min_speakers: int | None = None
    max_speakers: int | None = None


def job_diarize(request: dict[str, object]) -> Diarize | None:
    """What a stored job request asks of diarization; None when it is off."""
    settings = request.get("settings")
    if not isinstance(settings, dict) or settings.get("diarize") is not True:
        return None
    low, high = settings.get("min_speakers"), settings.get("max_speakers")
    return Diarize(
        min_speakers=low if isinstance(low, int) else None,
        max_speakers=high if isinstance(high, int) else None,
    )


#: what may be kept of a recording once its jobs are done, from most to least
KeepMedia = Literal["original", "audio", "none"]
KEEP_MEDIA: tuple[KeepMedia, ...] = ("original", "audio", "none")


def job_keep_media(request: dict[str, object], default: str) -> KeepMedia:
    """What a stored job request keeps of its recordings: its ``keepMedia``, else
    ``default`` (``RAGCAST_KEEP_MEDIA``), else ``original``."""
    settings = request.get("settings")
    value = settings.get("keepMedia") if isinstance(settings, dict) else None
    for mode in KEEP_MEDIA:
        if value == mode:
            return mode
    for mode in KEEP_MEDIA:
        if default == mode:
            return mode
    return "original"


# --- the body of ``POST /process``, also what a subscription submits on each run ---

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
#: the most items one job may name (URLs, selected content or uploads)
MAX_JOB_ITEMS = 10_000

Platform = Literal["tiktok", "youtube", "twitch", "documents"]
InputMethod = Literal["channel", "urls", "upload"]


class ProcessingSettings(BaseModel):
    """Chunking settings, in tokens of the embedding model's tokenizer."""

    model_config = ConfigDict(extra="allow")

    chunkSize: int = Field(default=1024, ge=16, le=32768)  # noqa: N815 - contract name
    chunkOverlap: int = Field(default=100, ge=0, le=32768)  # noqa: N815
    maxTokens: int = Field(default=8192, ge=16, le=131072)  # noqa: N815
    language: str = Field(
        default="auto",
        max_length=32,
        description="Spoken language: an ISO 639-1 code (`de`, `zh`, ...) or `auto`, "
        "detected per item. Also picks the platform caption track.",
    )
    diarize: bool = Field(
        default=False,
        strict=True,
        description="Label who speaks when (`SPEAKER_00`, ...) in transcripts, chunks, exports "
        "and search. Needs the audio: platform captions are not used for such a job.",
    )
    min_speakers: int | None = Field(
        default=None, ge=1, le=MAX_SPEAKERS, strict=True, description="With `diarize`"
    )
    max_speakers: int | None = Field(
        default=None, ge=1, le=MAX_SPEAKERS, strict=True, description="With `diarize`"
    )
    chinese_script: ChineseScript = Field(
        default="as_spoken",
        description="The script of Chinese items' transcripts and chunks: `as_spoken` (as "
        "transcribed), `simplified` or `traditional`. Search finds both scripts either way.",
    )
    keepMedia: KeepMedia | None = Field(  # noqa: N815 - the contract's casing
        default=None,
        description="What is kept of the job's recordings once every job using them is "
        "done: `original`, `audio` (an audio rendition browsers play; the original is "
        "deleted) or `none`; null: the server's `RAGCAST_KEEP_MEDIA`.",
    )

    @field_validator("language")
    @classmethod
    def _known_language(cls, value: str) -> str:
        return normalise_language(value)

    @field_validator("max_speakers")
    @classmethod
    def _speaker_bounds(cls, value: int | None, info: ValidationInfo) -> int | None:
        low = info.data.get("min_speakers")
        if value is not None and low is not None and low > value:
            raise ValueError(f"max_speakers ({value}) is less than min_speakers ({low})")
        return value


class JobCreate(BaseModel):
    """Body of ``POST /process``."""

    job_id: str = Field(pattern=ID_PATTERN, description="Idempotency key within one user")
    platform: Platform
    input_method: InputMethod
    channel_url: str | None = Field(default=None, max_length=2048)
    pasted_urls: list[str] = Field(default_factory=list, max_length=MAX_JOB_ITEMS)
    selected_content: list[str] = Field(default_factory=list, max_length=MAX_JOB_ITEMS)
    uploaded_documents: list[str] = Field(default_factory=list, max_length=MAX_JOB_ITEMS)
    embedding_model: EmbeddingModelConfig
    vector_db: VectorDbConfig
    settings: ProcessingSettings = Field(default_factory=ProcessingSettings)
    user_id: str | None = Field(default=None, description="Ignored: the API key decides")
