"""The export task: stream a job's chunks from the store into a file."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from sqlalchemy import func, select

from ragcast.context import Context
from ragcast.exports.writers import EXTENSIONS, ExportRecord, write_export
from ragcast.notify.outbox import export_completed
from ragcast.pipeline.speakers import speaker_fields
from ragcast.store.models import Chunk, Export, Item, Job

log = logging.getLogger(__name__)


def export_filename(fmt: str, when: datetime) -> str:
    """The download name, as in the contract: ``bulk-embeddings-YYYYMMDD.<ext>``."""
    return f"bulk-embeddings-{when:%Y%m%d}.{EXTENSIONS[fmt]}"


def iter_records(ctx: Context, job: Job, batch: int = 500) -> Iterator[ExportRecord]:
    """Every chunk of ``job`` in item and chunk order, read ``batch`` rows at a time."""
    with ctx.db.sessions() as s:
        rows = s.execute(
            select(Chunk, Item)
            .join(Item, Item.id == Chunk.item_id)
            .where(Item.job_pk == job.id, Item.status == "completed")
            .order_by(Item.index, Chunk.chunk_index)
            .execution_options(yield_per=batch)
        )
        for chunk, item in rows:
            yield ExportRecord(
                id=f"{item.content_id}:{chunk.chunk_index}",
                job_id=job.job_id,
                content_id=item.content_id,
                chunk_index=chunk.chunk_index,
                text=chunk.text,
                start_s=chunk.start_s,
                end_s=chunk.end_s,
                token_count=chunk.token_count,
                source_type=item.source_type,
                source=item.title or item.source_ref,
                title=item.title,
                url=item.url,
                language=item.language,
                **speaker_fields(chunk.speaker, chunk.speakers, item.speaker_map),
                embedding_model=f"{job.embedding_model}-{job.dimensions}",
                embedding=np.frombuffer(chunk.embedding or b"", dtype=np.float32),
            )


def run_export(ctx: Context, export_pk: int) -> None:
    """Write one export; progress is stored as batches are written."""
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
        path = ctx.settings.data_dir / "exports" / f"{exp.user_id}-{exp.id}.{EXTENSIONS[fmt]}"
        filename = export_filename(fmt, exp.created_at)

    def on_progress(n: int) -> None:
        with ctx.db.session() as s2:
            row = s2.get(Export, export_pk)
            if row is not None:
                row.progress = round(100.0 * n / max(total or 1, 1), 1) if total else 99.0

    try:
        write_export(
            fmt, iter_records(ctx, job), path, total=int(total or 0), on_progress=on_progress
        )
    except Exception as exc:
        log.exception("export %s failed", export_pk)
        with ctx.db.session() as s:
            row = s.get(Export, export_pk)
            if row is not None:
                row.status = "failed"
                row.error = f"export failed: {type(exc).__name__}: {exc}"[:500]
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
