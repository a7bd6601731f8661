"""Stream a job's chunks to an export file in one of four formats.

Every writer consumes an iterator of :class:`ExportRecord` and writes as it goes, so memory
stays bounded by one batch however large the job is. The file is written under a ``.part``
name and renamed into place only once complete, so a crash or a failing record source never
leaves a truncated file under the final name.

Formats:

- ``json``: one document ``{"format": "ragcast-export", "version": 1, "chunks": [...],
  "count": N}``; ``count`` comes last because it is only known once the stream ends.
- ``csv``: a header row and one row per chunk; ``embedding`` is a JSON array string and a
  ``None`` is an empty cell. A string cell that begins with ``=``, ``+``, ``-``, ``@``, a
  tab or a carriage return gets a leading single quote (OWASP's guard against formula
  injection), so a spreadsheet shows ``=HYPERLINK(…)`` as text instead of running it.
- ``parquet``: an explicit schema (``embedding`` is ``list<float32>``), one row group per batch.
- Every format carries ``speaker`` (the chunk's main speaker, as named) and ``speakers``
  (everyone speaking in it, most words first, joined by ``"; "``); both are null for a
  transcript that was not diarized.
- ``vector``: JSON Lines of ``{"id", "values", "metadata"}``, the import shape of Pinecone and
  Qdrant; ``None`` metadata values are dropped because those stores reject nulls.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import IO, Any, TypeAlias

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

logger = logging.getLogger(__name__)

#: An embedding: a sequence of floats or a numpy vector (usually float32).
Embedding: TypeAlias = Sequence[float] | npt.NDArray[np.floating[Any]]

#: A scalar that a JSON export or a vector-store metadata value can hold.
Scalar: TypeAlias = str | int | float | None

FORMATS: tuple[str, ...] = ("json", "csv", "parquet", "vector")
EXTENSIONS: dict[str, str] = {"json": "json", "csv": "csv", "parquet": "parquet", "vector": "jsonl"}


@dataclass(slots=True)
class ExportRecord:
    """One chunk as exported: its text, timing, source and embedding."""

    id: str
    job_id: str
    content_id: str
    chunk_index: int
    text: str
    start_s: float | None
    end_s: float | None
    token_count: int
    source_type: str
    source: str
    title: str | None
    url: str | None
    language: str | None
    #: the chunk's main speaker and everyone in it ("; "-joined), when diarized
    speaker: str | None
    speakers: str | None
    embedding_model: str
    embedding: Embedding

    def metadata(self) -> dict[str, Scalar]:
        """Every field except ``id`` and ``embedding`` (the vector format's metadata)."""
        return {
            "job_id": self.job_id,
            "content_id": self.content_id,
            "chunk_index": self.chunk_index,
            "text": self.text,
            "start_s": self.start_s,
            "end_s": self.end_s,
            "token_count": self.token_count,
            "source_type": self.source_type,
            "source": self.source,
            "title": self.title,
            "url": self.url,
            "language": self.language,
            "speaker": self.speaker,
            "speakers": self.speakers,
            "embedding_model": self.embedding_model,
        }

    def embedding_list(self) -> list[float]:
        """The embedding as Python floats; float32 values convert exactly."""
        return embedding_to_list(self.embedding)


#: Column order of the csv and parquet formats and key order of a json record.
FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in fields(ExportRecord))

SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("job_id", pa.string(), nullable=False),
        pa.field("content_id", pa.string(), nullable=False),
        pa.field("chunk_index", pa.int32(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("start_s", pa.float64()),
        pa.field("end_s", pa.float64()),
        pa.field("token_count", pa.int32(), nullable=False),
        pa.field("source_type", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("title", pa.string()),
        pa.field("url", pa.string()),
        pa.field("language", pa.string()),
        pa.field("speaker", pa.string()),
        pa.field("speakers", pa.string()),
        pa.field("embedding_model", pa.string(), nullable=False),
        pa.field("embedding", pa.list_(pa.float32()), nullable=False),
    ]
)


def embedding_to_list(embedding: Embedding) -> list[float]:
    """Convert an embedding to a list of Python floats (numpy values via ``tolist``)."""
    if isinstance(embedding, np.ndarray):
        values: list[float] = embedding.tolist()
        return values
    return [float(v) for v in embedding]


def _record_dict(record: ExportRecord) -> dict[str, Any]:
    # Written out by hand: dataclasses.asdict deep-copies, which is slow for embeddings.
    row: dict[str, Any] = {"id": record.id}
    row.update(record.metadata())
    row["embedding"] = record.embedding_list()
    return row


# Characters that str.splitlines() and some JSON Lines readers treat as line breaks but
# json.dumps(ensure_ascii=False) leaves raw; escaped, one record stays one line.
_LINE_BREAKS = (("\x85", "\\u0085"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029"))


def _dumps(value: object) -> str:
    # allow_nan=False: NaN/Infinity are not JSON, and a file other tools reject is worse
    # than a failed export.
    text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    # str.replace, not str.translate: translate is ~100x slower on these long strings.
    for char, escape in _LINE_BREAKS:
        text = text.replace(char, escape)
    return text


class _Progress:
    """Counts written records and reports every ``batch_size`` of them."""

    def __init__(self, batch_size: int, callback: Callable[[int], None] | None) -> None:
        self.batch_size = batch_size
        self.callback = callback
        self.count = 0
        self._reported: int | None = None

    def add(self, n: int = 1) -> None:
        """Count ``n`` more written records, reporting when a batch is complete."""
        before = self.count
        self.count += n
        if self.count // self.batch_size != before // self.batch_size:
            self._report()

    def finish(self) -> None:
        """Report the final count unless it was the last one reported."""
        if self._reported != self.count:
            self._report()

    def _report(self) -> None:
        self._reported = self.count
        if self.callback is not None:
            self.callback(self.count)


def _write_json(records: Iterator[ExportRecord], out: IO[str], progress: _Progress) -> None:
    out.write('{"format": "ragcast-export", "version": 1, "chunks": [')
    for record in records:
        out.write(",\n" if progress.count else "\n")
        out.write(_dumps(_record_dict(record)))
        progress.add()
    out.write(f'\n], "count": {progress.count}}}\n')


def _write_csv(records: Iterator[ExportRecord], out: IO[str], progress: _Progress) -> None:
    writer = csv.writer(out)
    writer.writerow(FIELD_NAMES)
    for record in records:
        row = _record_dict(record)
        row["embedding"] = _dumps(row["embedding"])
        # csv writes None as an empty cell and floats with repr, which round-trips.
        writer.writerow([csv_safe(row[name]) for name in FIELD_NAMES])
        progress.add()


#: first characters that make a spreadsheet read a cell as a formula
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: Any) -> Any:
    """A string cell a spreadsheet would run as a formula, quoted with ``'``; else as it is."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _write_vector(records: Iterator[ExportRecord], out: IO[str], progress: _Progress) -> None:
    for record in records:
        metadata = {k: v for k, v in record.metadata().items() if v is not None}
        line = {"id": record.id, "values": record.embedding_list(), "metadata": metadata}
        out.write(_dumps(line))
        out.write("\n")
        progress.add()


def _embedding_array(batch: Sequence[ExportRecord]) -> Any:
    vectors = [np.asarray(r.embedding, dtype=np.float32).reshape(-1) for r in batch]
    offsets = np.zeros(len(vectors) + 1, dtype=np.int64)
    np.cumsum([len(v) for v in vectors], out=offsets[1:])
    if offsets[-1] > np.iinfo(np.int32).max:
        raise ValueError("embedding batch too large for list<float32>; lower batch_size")
    values = np.concatenate(vectors) if vectors else np.empty(0, dtype=np.float32)
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(values))


def _record_batch(batch: Sequence[ExportRecord]) -> Any:
    columns: list[Any] = []
    for schema_field in SCHEMA:
        if schema_field.name == "embedding":
            columns.append(_embedding_array(batch))
        else:
            values = [getattr(r, schema_field.name) for r in batch]
            columns.append(pa.array(values, type=schema_field.type))
    return pa.RecordBatch.from_arrays(columns, schema=SCHEMA)


_DICTIONARY_COLUMNS = [name for name in SCHEMA.names if name != "embedding"]


def _write_parquet(records: Iterator[ExportRecord], path: Path, progress: _Progress) -> None:
    # Dictionary encoding suits the repetitive string columns but not the embedding: float
    # values almost never repeat, and trying it costs ~3x the memory and ~7x the time.
    with pq.ParquetWriter(path, SCHEMA, use_dictionary=_DICTIONARY_COLUMNS) as writer:
        batch: list[ExportRecord] = []
        for record in records:
            batch.append(record)
            if len(batch) >= progress.batch_size:
                writer.write_batch(_record_batch(batch), row_group_size=len(batch))
                progress.add(len(batch))
                batch = []
        if batch:
            writer.write_batch(_record_batch(batch), row_group_size=len(batch))
            progress.add(len(batch))


def _write(fmt: str, records: Iterator[ExportRecord], part: Path, progress: _Progress) -> None:
    if fmt == "parquet":
        _write_parquet(records, part, progress)
        return
    text_writers = {"json": _write_json, "csv": _write_csv, "vector": _write_vector}
    # newline="" is what the csv module requires and harmless for the JSON formats.
    with part.open("w", encoding="utf-8", newline="") as out:
        text_writers[fmt](records, out, progress)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_export(
    fmt: str,
    records: Iterable[ExportRecord],
    path: Path,
    *,
    total: int,
    on_progress: Callable[[int], None] | None = None,
    batch_size: int = 1000,
) -> int:
    """Stream ``records`` to ``path`` in format ``fmt`` and return how many were written.

    The data goes to ``<path>.part`` first and is renamed to ``path`` only when complete;
    if writing fails (including ``records`` raising) the part file is removed and the
    exception propagates, so ``path`` is never a partial export.

    ``total`` is the expected record count; a different actual count (chunks changed while
    exporting) is logged, not an error. ``on_progress`` is called with the running count
    after every ``batch_size`` records and always at least once, last with the final count.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    part = path.with_suffix(path.suffix + ".part")
    progress = _Progress(batch_size, on_progress)
    try:
        _write(fmt, iter(records), part, progress)
        progress.finish()
        # Flush to disk before the rename so a power loss cannot leave an empty file
        # under the final name.
        _fsync(part)
        os.replace(part, path)
    except BaseException:
        with contextlib.suppress(OSError):
            part.unlink(missing_ok=True)
        raise
    if progress.count != total:
        logger.warning("export %s wrote %d records, expected %d", path.name, progress.count, total)
    return progress.count
