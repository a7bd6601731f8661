"""The CLI's rich displays under their former name; they live in :mod:`ragcast.cli.progress`."""

from __future__ import annotations

from ragcast.cli.progress import (
    NAME_WIDTH,
    STAGE_WIDTH,
    STATUS_STYLE,
    TERMINAL_ITEM,
    JobProgress,
    clock,
    fetch_export,
    follow,
    hits_table,
    items_table,
    job_summary,
    jobs_table,
    status_table,
    upload_files,
)

__all__ = [
    "NAME_WIDTH",
    "STAGE_WIDTH",
    "STATUS_STYLE",
    "TERMINAL_ITEM",
    "JobProgress",
    "clock",
    "fetch_export",
    "follow",
    "hits_table",
    "items_table",
    "job_summary",
    "jobs_table",
    "status_table",
    "upload_files",
]
