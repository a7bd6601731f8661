"""The export task: stream a job's chunks from the store into a file.

Each chunk carries its item's facts (source, ``deep_link``, channel, upload date,
duration, language and how sure its detection was) and the job's (platform, the model's
own name and dimensions); :mod:`ragcast.exports.meta` names the files and the model.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Generator, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Text, func, select, type_coerce

from ragcast.context import Context
from ragcast.errors import internal_reason
from ragcast.exports.meta import (
    embedding_model_name,
    export_filename,
    parquet_metadata,
    stored_filename,
)
from ragcast.exports.writers import ExportBatch, ExportRecord, write_export_batches
from ragcast.notify.outbox import export_completed
from ragcast.retrieval.links import deep_link
from ragcast.retrieval.records import display_names
from ragcast.store.models import Chunk, Export, Item, Job

log = logging.getLogger(__name__)

#: chunks read from the store and written per batch
BATCH_SIZE = 1000
#: chunks per parquet row group: several batches, which keeps the footer (it grows with
#: each row group until the file is closed) small for millions of chunks; a multiple of
#: the batch size, so no batch is split between two row groups
ROW_GROUP_SIZE = 4 * BATCH_SIZE
#: least seconds between two progress updates of an export in the store
PROGRESS_INTERVAL_S = 1.0

#: what an export reads per chunk. The JSON columns come as the driver gives them (text on
#: SQLite, decoded on PostgreSQL) and are decoded here once per distinct value per item.
_COLUMNS = (
    Item.id,
    Item.content_id,
    Item.source_type,
    Item.source_ref,
    Item.title,
    Item.url,
    Item.channel,
    Item.upload_date,
    Item.duration_s,
    Item.language,
    Item.language_probability,
    type_coerce(Item.speaker_map, Text),
    Chunk.chunk_index,
    Chunk.text,
    Chunk.start_s,
    Chunk.end_s,
    Chunk.token_count,
    Chunk.embedding,
    type_coerce(Chunk.speakers, Text),
    Chunk.speaker,
    Chunk.confidence,
)


def _json(value: Any) -> Any:
    """A JSON column's value: decoded when it came as text."""
    return json.loads(value) if isinstance(value, str) else value


class _Speakers:
    """The ``speakers`` field of each chunk, with each item's speaker map decoded once and
    each distinct label list of an item named once (chunks with the same speakers share
    one list, which no writer changes)."""

    #: distinct label lists remembered per item
    LIMIT = 1024

    def __init__(self) -> None:
        self._item: int | None = None
        self._names: dict[str, str] | None = None
        self._named: dict[str, list[str] | None] = {}

    def names(self, item_id: int, speaker_map: Any, labels: Any) -> list[str] | None:
        """What ``labels`` are called, most words first (None when there are none)."""
        if labels is None:
            return None
        if item_id != self._item:
            self._item, self._names, self._named = item_id, _json(speaker_map), {}
        key = labels if isinstance(labels, str) else repr(labels)
        if key not in self._named:
            if len(self._named) >= self.LIMIT:
                self._named.clear()
            self._named[key] = display_names(_json(labels), self._names) or None
        return self._named[key]


def _embeddings(
    stored: Sequence[bytes | None],
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """The float32 embedding blobs as one flat buffer and the offsets of each."""
    blobs = [b or b"" for b in stored]
    sizes = np.fromiter(map(len, blobs), dtype=np.int64, count=len(blobs))
    if (sizes % 4).any():
        raise ValueError("an embedding is not a whole number of float32 values")
    offsets = np.zeros(len(blobs) + 1, dtype=np.int64)
    np.cumsum(sizes // 4, out=offsets[1:])
    return np.frombuffer(b"".join(blobs), dtype=np.float32), offsets


def _batch(rows: Sequence[Any], job: Job, model: str, speakers: _Speakers) -> ExportBatch:
    """One batch of export records from rows of :data:`_COLUMNS`."""
    (
        items, content_ids, source_types, refs, titles, urls, channels, dates, durations,
        languages, probabilities, maps,
        indexes, texts, starts, ends, tokens, blobs, labels, mains, confidences,
    ) = zip(*rows, strict=True)  # fmt: skip
    n = len(rows)
    platform = job.platform
    columns: dict[str, Sequence[Any]] = {
        "id": [f"{c}:{i}" for c, i in zip(content_ids, indexes, strict=True)],
        "job_id": [job.job_id] * n,
        "content_id": content_ids,
        "chunk_index": indexes,
        "text": texts,
        "start_s": starts,
        "end_s": ends,
        "token_count": tokens,
        "source_type": source_types,
        "source": [t or r for t, r in zip(titles, refs, strict=True)],
        "title": titles,
        "url": urls,
        "deep_link": [deep_link(platform, u, s) for u, s in zip(urls, starts, strict=True)],
        "platform": [platform] * n,
        "channel": channels,
        "upload_date": dates,
        "duration_s": durations,
        "language": languages,
        "language_probability": probabilities,
        "speaker": mains,
        "speakers": [speakers.names(i, m, s) for i, m, s in zip(items, maps, labels, strict=True)],
        "confidence": confidences,
        "embedding_model": [model] * n,
        "dimensions": [job.dimensions] * n,
    }
    values, offsets = _embeddings(blobs)
    return ExportBatch(columns, values, offsets)


def iter_batches(
    ctx: Context, job: Job, batch_size: int = BATCH_SIZE, model: str | None = None
) -> Generator[ExportBatch, None, None]:
    """Every chunk of ``job`` in item and chunk order, ``batch_size`` chunks per batch;
    ``model`` is the ``embedding_model`` column (default: :func:`embedding_model_name`).

    One query streams the rows (a server-side cursor on PostgreSQL); only the current
    batch is held.
    """
    stmt = (
        select(*_COLUMNS)
        .join(Item, Item.id == Chunk.item_id)
        .where(Item.job_pk == job.id, Item.status == "completed")
        .order_by(Item.index, Chunk.chunk_index)
    )
    if model is None:
        model = embedding_model_name(ctx, job)
    speakers = _Speakers()
    with ctx.db.engine.connect() as conn:
        result = conn.execution_options(yield_per=batch_size).execute(stmt)
        for rows in result.partitions():
            yield _batch(rows, job, model, speakers)


def iter_records(ctx: Context, job: Job, batch: int = BATCH_SIZE) -> Iterator[ExportRecord]:
    """Every chunk of ``job`` in item and chunk order, read ``batch`` rows at a time."""
    for records in iter_batches(ctx, job, batch):
        yield from records.records()


def run_export(
    ctx: Context,
    export_pk: int,
    *,
    batch_size: int = BATCH_SIZE,
    row_group_size: int = ROW_GROUP_SIZE,
) -> None:
    """Write one export, ``batch_size`` chunks at a time (parquet: ``row_group_size`` per
    row group); progress is stored at most once per :data:`PROGRESS_INTERVAL_S`."""
    with ctx.db.session() as s:
        exp = s.get(Export, export_pk)
        if exp is None or exp.status in ("completed", "failed"):
            return
        exp.status = "processing"
        job = exp.job
        fmt = exp.format
        total = s.scalar(
            select(func.count(Chunk.id))
            .join(Item, Item.id == Chunk.item_id)
            .where(Item.job_pk == job.id, Item.status == "completed")
        )
        path = ctx.settings.data_path(
            "exports", stored_filename(job.job_id, fmt, exp.created_at, exp.id)
        )
        filename = export_filename(fmt, exp.created_at)
        model = embedding_model_name(ctx, job)
        metadata = parquet_metadata(job, model, exp.created_at)
    if not total:
        log.warning("export %s: job %s has no chunks", export_pk, job.job_id)

    reported = -PROGRESS_INTERVAL_S

    def on_progress(n: int) -> None:
        nonlocal reported
        now = time.monotonic()
        if now - reported < PROGRESS_INTERVAL_S:
            return
        reported = now
        with ctx.db.session() as s2:
            row = s2.get(Export, export_pk)
            if row is not None:
                row.progress = round(100.0 * n / max(total or 1, 1), 1) if total else 99.0

    try:
        # closing: a failed write releases the store cursor at once, not when collected
        with contextlib.closing(iter_batches(ctx, job, batch_size, model)) as batches:
            write_export_batches(
                fmt,
                batches,
                path,
                total=int(total or 0),
                on_progress=on_progress,
                row_group_size=row_group_size,
                metadata=metadata,
            )
    except Exception as exc:
        log.exception("export %s failed", export_pk)
        with ctx.db.session() as s:
            row = s.get(Export, export_pk)
            if row is not None:
                row.status = "failed"
                row.error = "export failed: " + internal_reason(exc).removeprefix(
                    "internal error: "
                )
        return
    with ctx.db.session() as s:
        row = s.get(Export, export_pk, with_for_update=True)
        if row is None:
            Path(path).unlink(missing_ok=True)
            return
        if row.status == "completed":
            return  # a redelivered export finished twice: its event went out the first time
        row.status = "completed"
        row.progress = 100.0
        row.path = str(path)
        row.filename = filename
        row.file_size = Path(path).stat().st_size
        row.finished_at = datetime.now(UTC)
        export_completed(s, row)  # committed with the completion
