"""Stream a job's chunks to an export file in one of four formats.

Every writer consumes an iterator of :class:`ExportBatch` (consecutive records as columns,
their embeddings in one float32 buffer when read from the store) and writes as it goes, so
memory stays bounded by one batch (one parquet row group) however large the job is;
:func:`write_export` groups :class:`ExportRecord` objects into such batches. The file is
written under a ``.part`` name and renamed into place only once complete, so a crash or a
failing record source never leaves a truncated file under the final name.

Formats:

- ``json``: one document ``{"format": "ragcast-export", "version": 1, "chunks": [...],
  "count": N}``; ``count`` comes last because it is only known once the stream ends.
- ``csv``: a header row and one row per chunk; ``embedding`` is a JSON array string and a
  ``None`` is an empty cell. A string cell that begins with ``=``, ``+``, ``-``, ``@``, a
  tab or a carriage return gets a leading single quote (OWASP's guard against formula
  injection), so a spreadsheet shows ``=HYPERLINK(…)`` as text instead of running it.
- ``parquet``: an explicit schema (``embedding`` is ``list<float32>``); row groups of one
  batch each, or of a given number of records.
- Embeddings in json, vector and the csv cell are written as ``json.dumps`` writes floats (the
  shortest text that reads back as the same double); NaN and infinity fail the export.
- Every format carries ``speaker`` (the chunk's main speaker, as named) and ``speakers``
  (everyone speaking in it, most words first, joined by ``"; "``); both are null for a
  transcript that was not diarized.
- ``vector``: JSON Lines of ``{"id", "values", "metadata"}``, the import shape of Pinecone and
  Qdrant; ``None`` metadata values are dropped because those stores reject nulls.
"""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import json
import logging
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
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


#: the columns of an :class:`ExportBatch`: every field but ``embedding``, in field order
COLUMN_NAMES: tuple[str, ...] = FIELD_NAMES[:-1]
#: the vector format's metadata keys: every column but ``id``
_METADATA_NAMES: tuple[str, ...] = COLUMN_NAMES[1:]


def embedding_to_list(embedding: Embedding) -> list[float]:
    """Convert an embedding to a list of Python floats (numpy values via ``tolist``)."""
    if isinstance(embedding, np.ndarray):
        values: list[float] = embedding.tolist()
        return values
    return [float(v) for v in embedding]


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


def _not_json(values: object) -> ValueError:
    return ValueError(f"Out of range float values are not JSON compliant: {values!r:.80}")


def _floats_json(values: list[float]) -> str:
    """A list of finite floats as a JSON array, exactly as :func:`_dumps` writes it.

    ``repr`` of a float list is the same text (both write each float with ``float.__repr__``
    and separate with ``", "``), a little faster: embeddings are most of an export's text.
    """
    # A finite sum means every value is finite; an infinite one may be overflow, so look.
    if not math.isfinite(sum(values)) and not all(map(math.isfinite, values)):
        raise _not_json(values)
    return repr(values)


def _embedding_json(embedding: Embedding) -> str:
    values = embedding_to_list(embedding)
    if isinstance(embedding, np.ndarray) and embedding.dtype.kind not in "fiu":
        return _dumps(values)  # e.g. booleans: their JSON is not their repr
    return _floats_json(values)


class ExportBatch:
    """Consecutive export records as columns.

    ``columns`` maps every name of :data:`COLUMN_NAMES` to one value per record. The
    embeddings are either one flat float32 buffer with ``offsets`` (record ``i`` owns
    ``values[offsets[i]:offsets[i + 1]]``), as read from the store, or the records' own
    embeddings, kept as given (see :meth:`from_records`).
    """

    __slots__ = ("columns", "_embeddings", "_offsets", "_size", "_values")

    def __init__(
        self,
        columns: Mapping[str, Sequence[Any]],
        values: npt.NDArray[np.float32],
        offsets: npt.NDArray[np.int64],
    ) -> None:
        self.columns = columns
        self._size = len(offsets) - 1
        self._values: npt.NDArray[np.float32] | None = values
        self._offsets = offsets
        self._embeddings: Sequence[Embedding] | None = None
        self._check()

    @classmethod
    def from_records(cls, records: Sequence[ExportRecord]) -> ExportBatch:
        """The records as a batch; their embeddings are written exactly as they are."""
        batch = cls.__new__(cls)
        batch.columns = {name: [getattr(r, name) for r in records] for name in COLUMN_NAMES}
        batch._size = len(records)
        batch._values = None
        batch._offsets = np.zeros(0, dtype=np.int64)
        batch._embeddings = [r.embedding for r in records]
        batch._check()
        return batch

    def _check(self) -> None:
        for name in COLUMN_NAMES:
            if len(self.columns[name]) != self._size:
                raise ValueError(f"column {name!r} has {len(self.columns[name])} values")

    def __len__(self) -> int:
        return self._size

    def rows(self) -> Iterator[tuple[Any, ...]]:
        """Each record's column values, in :data:`COLUMN_NAMES` order."""
        return zip(*(self.columns[name] for name in COLUMN_NAMES), strict=True)

    def embedding_lists(self) -> Iterator[list[float]]:
        """Each record's embedding as Python floats."""
        if self._embeddings is not None:
            for embedding in self._embeddings:
                yield embedding_to_list(embedding)
            return
        assert self._values is not None
        values, offsets = self._values, self._offsets.tolist()
        for start, end in itertools.pairwise(offsets):
            yield values[start:end].tolist()

    def embedding_json(self) -> Iterator[str]:
        """Each record's embedding as a JSON array; ValueError for NaN or infinity."""
        if self._embeddings is not None:
            for embedding in self._embeddings:
                yield _embedding_json(embedding)
            return
        assert self._values is not None
        if not np.isfinite(self._values).all():
            raise _not_json(self._values[~np.isfinite(self._values)][:4].tolist())
        for values in self.embedding_lists():
            yield repr(values)  # finite floats: exactly json.dumps's text (_floats_json)

    def records(self) -> Iterator[ExportRecord]:
        """The batch as :class:`ExportRecord` objects."""
        if self._embeddings is not None:
            embeddings: Iterable[Embedding] = self._embeddings
        else:
            assert self._values is not None
            values, offsets = self._values, self._offsets.tolist()
            embeddings = (values[a:b] for a, b in itertools.pairwise(offsets))
        for row, embedding in zip(self.rows(), embeddings, strict=True):
            yield ExportRecord(**dict(zip(COLUMN_NAMES, row, strict=True)), embedding=embedding)

    def embedding_array(self) -> Any:
        """The embeddings as an Arrow ``list<float32>`` array."""
        if self._embeddings is not None:
            vectors = [np.asarray(e, dtype=np.float32).reshape(-1) for e in self._embeddings]
            offsets = np.zeros(len(vectors) + 1, dtype=np.int64)
            np.cumsum([len(v) for v in vectors], out=offsets[1:])
            values = np.concatenate(vectors) if vectors else np.empty(0, dtype=np.float32)
        else:
            assert self._values is not None
            values, offsets = self._values, self._offsets
        if offsets[-1] > np.iinfo(np.int32).max:
            raise ValueError("embedding batch too large for list<float32>; lower batch_size")
        return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(values))

    def record_batch(self) -> Any:
        """The batch as an Arrow record batch of :data:`SCHEMA`."""
        columns: list[Any] = [
            pa.array(self.columns[f.name], type=f.type) for f in SCHEMA if f.name != "embedding"
        ]
        columns.append(self.embedding_array())
        return pa.RecordBatch.from_arrays(columns, schema=SCHEMA)


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


def _write_json(batches: Iterator[ExportBatch], out: IO[str], progress: _Progress) -> None:
    out.write('{"format": "ragcast-export", "version": 1, "chunks": [')
    separator = "\n"
    for batch in batches:
        for row, vector in zip(batch.rows(), batch.embedding_json(), strict=True):
            # The record without its embedding, then the embedding as the last key: the
            # same text as _dumps of the whole record, the floats written only once.
            head = _dumps(dict(zip(COLUMN_NAMES, row, strict=True)))
            out.write(f'{separator}{head[:-1]}, "embedding": {vector}}}')
            separator = ",\n"
        progress.add(len(batch))
    out.write(f'\n], "count": {progress.count}}}\n')


#: first characters that make a spreadsheet read a cell as a formula
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: Any) -> Any:
    """A string cell a spreadsheet would run as a formula, quoted with ``'``; else as it is."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _csv_column(values: Sequence[Any]) -> list[Any]:
    """:func:`csv_safe` of every value of a column."""
    return ["'" + v if isinstance(v, str) and v.startswith(FORMULA_STARTS) else v for v in values]


def _csv_cell(text: str) -> str:
    """``text`` as ``csv.writer`` (excel dialect, minimal quoting) writes a cell."""
    if '"' in text or "\r" in text or "\n" in text:
        return '"' + text.replace('"', '""') + '"'
    return f'"{text}"' if "," in text else text


def _write_csv(batches: Iterator[ExportBatch], out: IO[str], progress: _Progress) -> None:
    csv.writer(out).writerow(FIELD_NAMES)
    # Each row's other cells go through csv.writer; the embedding cell, tens of kilobytes
    # that csv would copy character by character, is quoted by _csv_cell and appended.
    line = io.StringIO()
    writer = csv.writer(line)
    for batch in batches:
        # csv writes None as an empty cell and floats with repr, which round-trips.
        columns = [_csv_column(batch.columns[name]) for name in COLUMN_NAMES]
        for row, vector in zip(zip(*columns, strict=True), batch.embedding_json(), strict=True):
            line.seek(0)
            line.truncate()
            writer.writerow(row)
            # an embedding is a JSON array, which never starts like a formula
            out.write(f"{line.getvalue()[:-2]},{_csv_cell(vector)}\r\n")
        progress.add(len(batch))


def _write_vector(batches: Iterator[ExportBatch], out: IO[str], progress: _Progress) -> None:
    for batch in batches:
        for row, vector in zip(batch.rows(), batch.embedding_json(), strict=True):
            metadata = {
                k: v for k, v in zip(_METADATA_NAMES, row[1:], strict=True) if v is not None
            }
            # The text of _dumps({"id": ..., "values": ..., "metadata": ...}).
            out.write(f'{{"id": {_dumps(row[0])}, "values": {vector}, ')
            out.write(f'"metadata": {_dumps(metadata)}}}\n')
        progress.add(len(batch))


_DICTIONARY_COLUMNS = [name for name in SCHEMA.names if name != "embedding"]


class _RowGroups:
    """Record batches gathered into parquet row groups of ``size`` rows (the last one may be
    smaller); ``None`` makes each batch its own row group. Rows wait as compact Arrow
    batches, so a row group can be larger than the batches read to make it."""

    def __init__(self, writer: Any, size: int | None) -> None:
        self.writer = writer
        self.size = size
        self.pending: list[Any] = []
        self.rows = 0

    def add(self, batch: Any) -> None:
        """Queue one record batch, writing every row group it completes."""
        self.pending.append(batch)
        self.rows += batch.num_rows
        size = self.size or self.rows
        if self.rows >= size:
            table = pa.Table.from_batches(self.pending, schema=SCHEMA)
            full = self.rows - self.rows % size
            self.writer.write_table(table.slice(0, full), row_group_size=size)
            self.pending = table.slice(full).to_batches() if full < self.rows else []
            self.rows -= full

    def finish(self) -> None:
        """Write the rows still waiting as the last row group."""
        if self.rows:
            table = pa.Table.from_batches(self.pending, schema=SCHEMA)
            self.writer.write_table(table, row_group_size=self.rows)
            self.pending, self.rows = [], 0


def _write_parquet(
    batches: Iterator[ExportBatch], path: Path, progress: _Progress, row_group_size: int | None
) -> None:
    # Dictionary encoding suits the repetitive string columns but not the embedding: float
    # values almost never repeat, and trying it costs ~3x the memory and ~7x the time.
    with pq.ParquetWriter(path, SCHEMA, use_dictionary=_DICTIONARY_COLUMNS) as writer:
        groups = _RowGroups(writer, row_group_size)
        for batch in batches:
            if len(batch):
                groups.add(batch.record_batch())
                progress.add(len(batch))
        groups.finish()


def _write(
    fmt: str,
    batches: Iterator[ExportBatch],
    part: Path,
    progress: _Progress,
    row_group_size: int | None,
) -> None:
    if fmt == "parquet":
        _write_parquet(batches, part, progress, row_group_size)
        return
    text_writers = {"json": _write_json, "csv": _write_csv, "vector": _write_vector}
    # newline="" is what the csv module requires and harmless for the JSON formats.
    with part.open("w", encoding="utf-8", newline="") as out:
        text_writers[fmt](batches, out, progress)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _batches(records: Iterable[ExportRecord], size: int) -> Iterator[ExportBatch]:
    it = iter(records)
    while chunk := list(itertools.islice(it, size)):
        yield ExportBatch.from_records(chunk)


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
    Records are written ``batch_size`` at a time (a parquet row group each).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    progress = _Progress(batch_size, on_progress)
    return _write_file(fmt, _batches(records, batch_size), path, total, progress, batch_size)


def write_export_batches(
    fmt: str,
    batches: Iterable[ExportBatch],
    path: Path,
    *,
    total: int,
    on_progress: Callable[[int], None] | None = None,
    row_group_size: int | None = None,
) -> int:
    """:func:`write_export` for records already in batches.

    ``on_progress`` is called with the running count after every non-empty batch and
    always at least once, last with the final count. Parquet row groups hold
    ``row_group_size`` records (the last one fewer), or one batch each when it is None.
    """
    if row_group_size is not None and row_group_size < 1:
        raise ValueError("row_group_size must be at least 1")
    progress = _Progress(1, on_progress)
    return _write_file(fmt, iter(batches), path, total, progress, row_group_size)


def _write_file(
    fmt: str,
    batches: Iterator[ExportBatch],
    path: Path,
    total: int,
    progress: _Progress,
    row_group_size: int | None,
) -> int:
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; expected one of {', '.join(FORMATS)}")
    part = path.with_suffix(path.suffix + ".part")
    try:
        _write(fmt, batches, part, progress, row_group_size)
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
