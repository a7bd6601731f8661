"""Plain data types of transcripts and chunks, read by providers, the pipeline and retrieval.

They are JSON-serialisable through :meth:`to_dict`/``from_dict`` so every stage can
checkpoint its result in the job store and a retried item resumes from it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ragcast.text import join_words


@dataclass(slots=True)
class Word:
    """One word of a transcript; times are seconds from the start, or ``None`` for text."""

    text: str
    start: float | None = None
    end: float | None = None
    speaker: str | None = None  # ``SPEAKER_00``, ... once diarized
    #: how sure the recogniser was of the word (0..1); None for captions and documents
    probability: float | None = None


@dataclass(slots=True)
class Segment:
    """A run of words (a Whisper segment, a subtitle cue, a paragraph of a document)."""

    text: str
    start: float | None = None
    end: float | None = None
    words: list[Word] = field(default_factory=list)
    speaker: str | None = None  # one speaker per segment once diarized


@dataclass(slots=True)
class Transcript:
    """A whole transcript of one content item."""

    source: str  # "asr", "captions" or "document"
    language: str | None
    duration_s: float | None
    segments: list[Segment]
    #: how sure language detection was (None when the language was given, not detected)
    language_probability: float | None = None
    #: what the quality checks noticed but did not fail the item for
    warnings: list[str] = field(default_factory=list)
    #: the speaker labels in order of first appearance; None when not diarized
    speakers: list[str] | None = None
    #: stretches where two or more speakers talk at once: ``{"start", "end", "speakers"}``
    overlaps: list[dict[str, Any]] | None = None
    #: each label's voice: ``{"vector": unit embedding, "speech_s": seconds}``, and
    #: ``"match": {"name", "score"}`` where the user's speaker library recognised it
    voices: dict[str, dict[str, Any]] | None = None
    #: the speaker-embedding model the voices' vectors come from
    voice_model: str | None = None

    @property
    def text(self) -> str:
        """The transcript as one string: a recording's segments joined as their script
        writes them (no space between two CJK characters), a document's with a space."""
        texts = [s.text.strip() for s in self.segments if s.text.strip()]
        return join_words(texts) if self.source == "asr" else " ".join(texts)

    def to_dict(self) -> dict[str, Any]:
        """Serialise for the job store."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Transcript:
        """Rebuild a transcript stored with :meth:`to_dict`."""
        segments = [
            Segment(
                text=s["text"],
                start=s.get("start"),
                end=s.get("end"),
                words=[Word(**w) for w in s.get("words", [])],
                speaker=s.get("speaker"),
            )
            for s in data["segments"]
        ]
        return cls(
            source=data["source"],
            language=data.get("language"),
            duration_s=data.get("duration_s"),
            segments=segments,
            language_probability=data.get("language_probability"),
            warnings=list(data.get("warnings") or []),
            speakers=data.get("speakers"),
            overlaps=data.get("overlaps"),
            voices=data.get("voices"),
            voice_model=data.get("voice_model"),
        )


@dataclass(slots=True)
class ChunkSpec:
    """How to cut a transcript: sizes are in tokens of the embedding model's tokenizer."""

    chunk_size: int
    chunk_overlap: int
    max_tokens: int


@dataclass(slots=True)
class TextChunk:
    """A chunk ready to embed, with the time span of the words it holds."""

    index: int
    text: str
    token_count: int
    start_s: float | None
    end_s: float | None
    #: speaker labels of the chunk's words, most words first (empty when not diarized)
    speakers: list[str] = field(default_factory=list)
    #: the recogniser's mean word probability over the chunk (0..1); None without one
    confidence: float | None = None

    @property
    def speaker(self) -> str | None:
        """The chunk's main speaker: the one who says most of its words."""
        return self.speakers[0] if self.speakers else None
