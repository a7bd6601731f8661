"""What the index holds for each chunk: its vector record and the metadata beside it.

Written by the pipeline's index stage, read back by search and by the move between
collections, so it lives here, below both. Speaker labels become names here too, as
vector metadata, exports and hits all show them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from ragcast.context import Context
from ragcast.providers.embedders.base import EmbeddingSpec
from ragcast.providers.vectorstores.base import VectorRecord
from ragcast.retrieval.filters import upload_ts
from ragcast.retrieval.links import deep_link
from ragcast.store.models import Chunk, Item, Job

#: the vector metadata key listing everyone who speaks in a chunk, by the names shown
SPEAKER_NAMES = "speaker_names"
#: how a chunk's speakers are joined in vector metadata (a name may not contain it)
SPEAKER_SEPARATOR = "; "


def embedding_spec(job: Job) -> EmbeddingSpec:
    """The resolved embedding spec a job was accepted with."""
    return EmbeddingSpec(job.embedding_model, job.dimensions, dict(job.request["embedding_model"]))


def index_records(ctx: Context, s: Session, item: Item, job: Job) -> list[VectorRecord]:
    """The vector records of an item's stored chunks, ready to upsert."""
    rows = s.scalars(
        select(Chunk).where(Chunk.item_id == item.id).order_by(Chunk.chunk_index)
    ).all()
    return chunk_records(ctx, job, [(item, c) for c in rows])


def chunk_records(
    ctx: Context, job: Job, chunks: Sequence[tuple[Item, Chunk]]
) -> list[VectorRecord]:
    """The vector records of stored ``(item, chunk)`` pairs, ready to upsert."""
    width = 0
    if any(c.multi_embedding is not None for _, c in chunks):
        width = ctx.providers.embedder(embedding_spec(job)).multi_vector_dimensions
    return [
        VectorRecord(
            id=f"{item.content_id}:{c.chunk_index}",
            vector=np.frombuffer(c.embedding or b"", dtype=np.float32),
            text=c.text,
            metadata=vector_metadata(job, item, c),
            multi_vector=(
                np.frombuffer(c.multi_embedding, dtype=np.float32).reshape(-1, width)
                if c.multi_embedding is not None and width
                else None
            ),
        )
        for item, c in chunks
    ]


def vector_metadata(job: Job, item: Item, chunk: Chunk) -> dict[str, object]:
    """The metadata stored with each vector (and exported beside it)."""
    return {
        "job_id": job.job_id,
        "content_id": item.content_id,
        "chunk_index": chunk.chunk_index,
        "start_s": chunk.start_s,
        "end_s": chunk.end_s,
        "token_count": chunk.token_count,
        "source_type": item.source_type,
        "source": item.title or item.source_ref,
        "title": item.title,
        "url": item.url,
        "deep_link": deep_link(job.platform, item.url, chunk.start_s),
        "channel": item.channel,
        "upload_date": item.upload_date,
        "upload_ts": upload_ts(item.upload_date),
        "platform": job.platform,
        "language": item.language,
        "confidence": chunk.confidence,
        **speaker_fields(chunk.speaker, chunk.speakers, item.speaker_map),
    }


def display_name(label: str | None, names: Mapping[str, str] | None) -> str | None:
    """What a speaker is called: the name given to ``label``, else the label itself."""
    if label is None:
        return None
    return (names or {}).get(label) or label


def display_names(labels: Sequence[str] | None, names: Mapping[str, str] | None) -> list[str]:
    """:func:`display_name` of each label, in order."""
    return [display_name(label, names) or label for label in labels or ()]


def split_speakers(value: object) -> list[str]:
    """The list a ``speakers`` metadata string was joined from."""
    if not isinstance(value, str) or not value:
        return []
    return value.split(SPEAKER_SEPARATOR)


def speaker_fields(
    main: str | None, labels: Sequence[str] | None, names: Mapping[str, str] | None
) -> dict[str, object]:
    """A chunk's ``speaker`` (what its main speaker is called) and ``speakers`` (everyone
    in it, most words first, joined by :data:`SPEAKER_SEPARATOR`), as vector metadata and
    exports carry them, and ``speaker_names``, the same names as a list: the ``speaker``
    search filter matches any of them, so every word a speaker said is found by name."""
    shown = display_names(labels, names)
    return {
        "speaker": main,
        "speakers": SPEAKER_SEPARATOR.join(shown) or None,
        SPEAKER_NAMES: shown or None,
    }
