"""The four export formats, each a writer of a stream of :class:`ExportBatch` to a file.

- ``json``: one document ``{"format": "ragcast-export", "version": 2, "chunks": [...],
  "count": N}``; ``count`` comes last because it is only known once the stream ends.
  Version 2 added the item's and the model's columns and made ``speakers`` an array.
- ``csv``: a header row and one row per chunk; ``embedding`` is a JSON array string,
  ``speakers`` the names joined by ``"; "`` and a ``None`` is an empty cell. A string
  cell that begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a
  leading single quote (OWASP's guard against formula injection), so a spreadsheet shows
  ``=HYPERLINK(…)`` as text instead of running it.
- ``parquet``: an explicit schema (``embedding`` is ``list<float32>``, ``speakers``
  ``list<string>``) with the export's key/value metadata (model, dimensions, job id,
  ragcast version, created time); row groups of one batch each, or of a given number of
  records.
- Embeddings in json, vector and the csv cell are written as ``json.dumps`` writes floats (the
  shortest text that reads back as the same double); NaN and infinity fail the export.
- Every format carries ``speaker`` (the chunk's main speaker, as named) and ``speakers``
  (everyone speaking in it, most words first, a list); both are null for a transcript
  that was not diarized.
- Every format carries the item's ``deep_link`` (``url`` at ``start_s``), ``platform``,
  ``channel``, ``upload_date``, ``duration_s`` and ``language_probability``, and the
  model's own name (``embedding_model``) and ``dimensions``.
- Every format carries ``confidence``: the recogniser's mean word probability over the
  chunk (0..1), null for documents, captions and chunks indexed before it was kept.
- ``vector``: JSON Lines of ``{"id", "values", "metadata"}``, the import shape of Pinecone and
  Qdrant; ``None`` metadata values are dropped because those stores reject nulls;
  ``speakers`` is a list of strings, which both take as metadata.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq

from ragcast.exports.records import (
    COLUMN_NAMES,
    FIELD_NAMES,
    LIST_COLUMNS,
    SCHEMA,
    ExportBatch,
    json_text,
)

FORMATS: tuple[str, ...] = ("json", "csv", "parquet", "vector")
EXTENSIONS: dict[str, str] = {"json": "json", "csv": "csv", "parquet": "parquet", "vector": "jsonl"}

#: the vector format's metadata keys: every column but ``id``
_METADATA_NAMES: tuple[str, ...] = COLUMN_NAMES[1:]
#: how a csv cell joins a list (speaker names): the separator of the vector store's
#: ``speakers`` metadata too (``ragcast.retrieval.records.SPEAKER_SEPARATOR``)
CSV_LIST_SEPARATOR = "; "


class Progress:
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


def _write_json(batches: Iterator[ExportBatch], out: IO[str], progress: Progress) -> None:
    out.write('{"format": "ragcast-export", "version": 2, "chunks": [')
    separator = "\n"
    for batch in batches:
        for row, vector in zip(batch.rows(), batch.embedding_json(), strict=True):
            # The record without its embedding, then the embedding as the last key: the
            # same text as json_text of the whole record, the floats written only once.
            head = json_text(dict(zip(COLUMN_NAMES, row, strict=True)))
            out.write(f'{separator}{head[:-1]}, "embedding": {vector}}}')
            separator = ",\n"
        progress.add(len(batch))
    out.write(f'\n], "count": {progress.count}}}\n')


#: first characters that make a spreadsheet read a cell as a formula
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: Any) -> Any:
    """A value as its csv cell holds it: a list joined by :data:`CSV_LIST_SEPARATOR`, and a
    string a spreadsheet would run as a formula quoted with ``'``; else as it is."""
    if isinstance(value, list):
        value = CSV_LIST_SEPARATOR.join(value)
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _csv_column(values: Sequence[Any]) -> list[Any]:
    """:func:`csv_safe` of every value of a column of scalars."""
    return ["'" + v if isinstance(v, str) and v.startswith(FORMULA_STARTS) else v for v in values]


def _csv_columns(batch: ExportBatch) -> list[list[Any]]:
    """Every column of ``batch`` as csv cells: list columns joined, formulas quoted."""
    columns = []
    for name in COLUMN_NAMES:
        values = batch.columns[name]
        if name in LIST_COLUMNS:
            values = [None if v is None else CSV_LIST_SEPARATOR.join(v) for v in values]
        columns.append(_csv_column(values))
    return columns


def _csv_cell(text: str) -> str:
    """``text`` as ``csv.writer`` (excel dialect, minimal quoting) writes a cell."""
    if '"' in text or "\r" in text or "\n" in text:
        return '"' + text.replace('"', '""') + '"'
    return f'"{text}"' if "," in text else text


def _write_csv(batches: Iterator[ExportBatch], out: IO[str], progress: Progress) -> None:
    csv.writer(out).writerow(FIELD_NAMES)
    # Each row's other cells go through csv.writer; the embedding cell, tens of kilobytes
    # that csv would copy character by character, is quoted by _csv_cell and appended.
    line = io.StringIO()
    writer = csv.writer(line)
    for batch in batches:
        # csv writes None as an empty cell and floats with repr, which round-trips.
        columns = _csv_columns(batch)
        for row, vector in zip(zip(*columns, strict=True), batch.embedding_json(), strict=True):
            line.seek(0)
            line.truncate()
            writer.writerow(row)
            # an embedding is a JSON array, which never starts like a formula
            out.write(f"{line.getvalue()[:-2]},{_csv_cell(vector)}\r\n")
        progress.add(len(batch))


def _write_vector(batches: Iterator[ExportBatch], out: IO[str], progress: Progress) -> None:
    for batch in batches:
        for row, vector in zip(batch.rows(), batch.embedding_json(), strict=True):
            metadata = {
                k: v for k, v in zip(_METADATA_NAMES, row[1:], strict=True) if v is not None
            }
            # The text of json_text({"id": ..., "values": ..., "metadata": ...}).
            out.write(f'{{"id": {json_text(row[0])}, "values": {vector}, ')
            out.write(f'"metadata": {json_text(metadata)}}}\n')
        progress.add(len(batch))


#: parquet's column paths: a list column's strings are ``name.list.element``
_DICTIONARY_COLUMNS = [
    f"{name}.list.element" if name in LIST_COLUMNS else name
    for name in SCHEMA.names
    if name != "embedding"
]


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
    batches: Iterator[ExportBatch],
    path: Path,
    progress: Progress,
    row_group_size: int | None,
    metadata: Mapping[str, str] | None,
) -> None:
    schema = SCHEMA.with_metadata(dict(metadata)) if metadata else SCHEMA
    # Dictionary encoding suits the repetitive string columns but not the embedding: float
    # values almost never repeat, and trying it costs ~3x the memory and ~7x the time.
    with pq.ParquetWriter(path, schema, use_dictionary=_DICTIONARY_COLUMNS) as writer:
        groups = _RowGroups(writer, row_group_size)
        for batch in batches:
            if len(batch):
                groups.add(batch.record_batch())
                progress.add(len(batch))
        groups.finish()


def write_format(
    fmt: str,
    batches: Iterator[ExportBatch],
    part: Path,
    progress: Progress,
    row_group_size: int | None,
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Write ``batches`` to the file ``part`` in format ``fmt``, counting into ``progress``;
    ``metadata`` becomes the parquet schema's key/value metadata (other formats carry the
    same facts in their columns)."""
    if fmt == "parquet":
        _write_parquet(batches, part, progress, row_group_size, metadata)
        return
    text_writers = {"json": _write_json, "csv": _write_csv, "vector": _write_vector}
    # newline="" is what the csv module requires and harmless for the JSON formats.
    with part.open("w", encoding="utf-8", newline="") as out:
        text_writers[fmt](batches, out, progress)
