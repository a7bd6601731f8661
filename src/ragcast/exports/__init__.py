"""Exports: stream a job's chunks to a json, csv, parquet or vector (JSON Lines) file."""

from __future__ import annotations

from ragcast.exports.writers import (
    EXTENSIONS,
    FIELD_NAMES,
    FORMATS,
    SCHEMA,
    Embedding,
    ExportBatch,
    ExportRecord,
    embedding_to_list,
    write_export,
    write_export_batches,
)

__all__ = [
    "EXTENSIONS",
    "FIELD_NAMES",
    "FORMATS",
    "SCHEMA",
    "Embedding",
    "ExportBatch",
    "ExportRecord",
    "embedding_to_list",
    "write_export",
    "write_export_batches",
]
