"""What an export says about itself: its file names, its model, its parquet metadata and the
warnings of its status.

- The download name is the contract's, ``bulk-embeddings-YYYYMMDD.<ext>``
  (``filename`` and ``Content-Disposition``). The file on the server is
  ``{job_id}-{YYYYMMDD}-{export}.<ext>`` in ``data_dir/exports``: the job id made safe
  for a file name, and the export's own key, so two jobs (or two exports of one job)
  exported the same day never share a file.
- ``embedding_model`` is the model's own name, not the contract's id: the ``local``
  model a job was accepted with (``use-multilingual-v3``…, kept in its request), else
  the backend's ``model_name`` (``jina-embeddings-v4``, ``gemini-embedding-001``). The
  local model is never loaded for it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import PurePath

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

import ragcast
from ragcast.context import Context
from ragcast.errors import ConfigurationError
from ragcast.exports.formats import EXTENSIONS
from ragcast.providers.embedders.base import EmbeddingSpec
from ragcast.store.models import Chunk, Item, Job

#: characters a file name keeps; any other becomes ``_`` (``:`` is refused on Windows)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
#: the most characters of a job id a file name keeps
JOB_NAME_LIMIT = 100


def export_filename(fmt: str, when: datetime) -> str:
    """The download name, as in the contract: ``bulk-embeddings-YYYYMMDD.<ext>``."""
    return f"bulk-embeddings-{when:%Y%m%d}.{EXTENSIONS[fmt]}"


def safe_job_name(job_id: str) -> str:
    """``job_id`` as part of a file name: letters, digits, ``.``, ``_`` and ``-`` only,
    never starting with a dot, at most :data:`JOB_NAME_LIMIT` characters."""
    name = _UNSAFE.sub("_", job_id).lstrip(".")[:JOB_NAME_LIMIT]
    return name or "job"


def stored_filename(job_id: str, fmt: str, when: datetime, export_pk: int) -> str:
    """The export's file on the server: ``{job_id}-{YYYYMMDD}-{export_pk}.<ext>``."""
    return f"{safe_job_name(job_id)}-{when:%Y%m%d}-{export_pk}.{EXTENSIONS[fmt]}"


def embedding_model_name(ctx: Context, job: Job) -> str:
    """The name of the model that embedded ``job`` (see the module docstring)."""
    if job.embedding_model == "local":
        named = (job.request or {}).get("embedding_model", {}).get("model")
        if isinstance(named, str) and named:
            path = PurePath(named)
            # a model folder on the server: its last two parts, as Job.tokenizer has it
            return f"{path.parent.name}/{path.name}" if path.is_absolute() else named
        return job.tokenizer or job.embedding_model  # jobs from before the model was kept
    options = dict((job.request or {}).get("embedding_model") or {})
    try:
        embedder = ctx.providers.embedder(
            EmbeddingSpec(job.embedding_model, job.dimensions, options)
        )
        return embedder.model_name or job.embedding_model
    except ConfigurationError:  # the backend is no longer installed: its id is all we have
        return job.embedding_model


def parquet_metadata(job: Job, model: str, created: datetime) -> dict[str, str]:
    """The key/value metadata of a parquet export's schema (every value a string)."""
    return {
        "embedding_model": model,
        "dimensions": str(job.dimensions),
        "job_id": job.job_id,
        "ragcast_version": ragcast.__version__,
        "created_at": (created if created.tzinfo else created.replace(tzinfo=UTC)).isoformat(),
    }


def empty_job_warning(s: Session, job_pk: int) -> str | None:
    """Why an export of the job holds no chunks, or None when it holds some."""
    if s.scalar(
        select(Chunk.id)
        .join(Item, Item.id == Chunk.item_id)
        .where(Item.job_pk == job_pk, Item.status == "completed")
        .limit(1)
    ):
        return None
    done = func.sum(case((Item.status == "completed", 1), else_=0))
    items, completed = s.execute(
        select(func.count(Item.id), done).where(Item.job_pk == job_pk)
    ).one()
    status = s.scalar(select(Job.status).where(Job.id == job_pk))
    if not items:
        why = "it has no items"
    elif not completed:
        why = f"none of its {items} items completed (the job is {status})"
    else:
        why = f"its {completed} completed items held no text or speech to index"
    return f"the job has no chunks: {why}; the export holds no records"
