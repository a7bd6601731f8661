"""Stream a job's chunks to an export file in one of four formats.

Every writer consumes an iterator of :class:`ExportBatch` (consecutive records as columns,
their embeddings in one float32 buffer when read from the store) and writes as it goes, so
memory stays bounded by one batch (one parquet row group) however large the job is;
:func:`write_export` groups :class:`ExportRecord` objects into such batches. The file is
written under a ``.part`` name and renamed into place only once complete, so a crash or a
failing record source never leaves a truncated file under the final name.

The records and batches are in :mod:`ragcast.exports.records`; the formats (json, csv,
parquet and vector) and their writers in :mod:`ragcast.exports.formats`.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

from ragcast.exports.formats import (
    CSV_LIST_SEPARATOR,
    EXTENSIONS,
    FORMATS,
    FORMULA_STARTS,
    Progress,
    csv_safe,
    write_format,
)
from ragcast.exports.records import (
    COLUMN_NAMES,
    FIELD_NAMES,
    LIST_COLUMNS,
    SCHEMA,
    Embedding,
    ExportBatch,
    ExportRecord,
    Scalar,
    Value,
    embedding_to_list,
)

__all__ = [
    "COLUMN_NAMES",
    "CSV_LIST_SEPARATOR",
    "EXTENSIONS",
    "FIELD_NAMES",
    "FORMATS",
    "FORMULA_STARTS",
    "LIST_COLUMNS",
    "SCHEMA",
    "Embedding",
    "ExportBatch",
    "ExportRecord",
    "Scalar",
    "Value",
    "csv_safe",
    "embedding_to_list",
    "write_export",
    "write_export_batches",
]

logger = logging.getLogger(__name__)


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
    metadata: Mapping[str, str] | None = None,
) -> int:
    """Stream ``records`` to ``path`` in format ``fmt`` and return how many were written.

    The data goes to ``<path>.part`` first and is renamed to ``path`` only when complete;
    if writing fails (including ``records`` raising) the part file is removed and the
    exception propagates, so ``path`` is never a partial export.

    ``total`` is the expected record count; a different actual count (chunks changed while
    exporting) is logged, not an error. ``on_progress`` is called with the running count
    after every ``batch_size`` records and always at least once, last with the final count.
    Records are written ``batch_size`` at a time (a parquet row group each). ``metadata``
    is the parquet schema's key/value metadata (ignored by the other formats).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    progress = Progress(batch_size, on_progress)
    batches = _batches(records, batch_size)
    return _write_file(fmt, batches, path, total, progress, batch_size, metadata)


def write_export_batches(
    fmt: str,
    batches: Iterable[ExportBatch],
    path: Path,
    *,
    total: int,
    on_progress: Callable[[int], None] | None = None,
    row_group_size: int | None = None,
    metadata: Mapping[str, str] | None = None,
) -> int:
    """:func:`write_export` for records already in batches.

    ``on_progress`` is called with the running count after every non-empty batch and
    always at least once, last with the final count. Parquet row groups hold
    ``row_group_size`` records (the last one fewer), or one batch each when it is None.
    """
    if row_group_size is not None and row_group_size < 1:
        raise ValueError("row_group_size must be at least 1")
    progress = Progress(1, on_progress)
    return _write_file(fmt, iter(batches), path, total, progress, row_group_size, metadata)


def _write_file(
    fmt: str,
    batches: Iterator[ExportBatch],
    path: Path,
    total: int,
    progress: Progress,
    row_group_size: int | None,
    metadata: Mapping[str, str] | None,
) -> int:
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; expected one of {', '.join(FORMATS)}")
    part = path.with_suffix(path.suffix + ".part")
    try:
        write_format(fmt, batches, part, progress, row_group_size, metadata)
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
