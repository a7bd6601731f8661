"""Deleting jobs and uploads: rows, files, and the vectors nothing else needs.

Shared by ``DELETE /job/{job_id}`` (the owner), ``DELETE /uploads/{document_id}`` and the
admin's ``DELETE /cleanup``. Vector ids are ``content_id:chunk_index`` in the user's
tenant of the embedding model's collection, so the same video in two jobs of one user is
one set of vectors: a content's vectors go only when no other job of that user in the
same collection still holds the content. Upload and media files go only when no
remaining item uses them, and with them their audio renditions (ragcast.pipeline.media).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import delete, exists, select, update
from sqlalchemy.orm import Session

from ragcast.context import Context
from ragcast.pipeline.media import rendition_path
from ragcast.retrieval.layout import job_tenant
from ragcast.store.models import Export, Item, Job, Upload

log = logging.getLogger(__name__)


@dataclass
class Purged:
    """What a deletion removed, and the files and vectors to remove after the commit."""

    jobs: int = 0
    items: int = 0
    exports: int = 0
    uploads: int = 0
    files: list[str] = field(default_factory=list)
    #: recordings among ``files``, whose audio renditions go with them
    recordings: list[str] = field(default_factory=list)
    #: (vector_db, collection, content_id, tenant) whose vectors no remaining job holds
    vectors: list[tuple[str, str, str, str | None]] = field(default_factory=list)


def claim_job(s: Session, job: Job) -> bool:
    """Claim a finished ``job`` for deletion; False when another deletion has it.

    One conditional UPDATE, the transaction's first write, whose row count decides: of
    concurrent deletions of one job exactly one claims it. On PostgreSQL the others wait
    on the row's lock and then find it gone; on SQLite they wait for the write lock and
    then find it gone. Call it before :func:`delete_jobs`, in the same transaction.
    """
    claimed = s.execute(
        update(Job)
        .where(Job.id == job.id, Job.finished_at.is_not(None))
        .values(stage="Deleting")
        .execution_options(synchronize_session=False)
    )
    return getattr(claimed, "rowcount", 0) == 1


def delete_jobs(s: Session, jobs: list[Job], *, vectors: bool) -> Purged:
    """Delete ``jobs`` with their items, exports and the uploads only they used.

    With ``vectors`` the contents no other job of the same user and collection holds are
    listed for :func:`finish` to delete from the vector database.
    """
    out = Purged(jobs=len(jobs))
    ids = [j.id for j in jobs]
    if not ids:
        return out
    out.files += [p for p in s.scalars(select(Export.path).where(Export.job_pk.in_(ids))) if p]
    out.exports = len(s.scalars(select(Export.id).where(Export.job_pk.in_(ids))).all())
    items = s.execute(
        select(Item.source_type, Item.source_ref, Item.content_id, Item.media_path, Job)
        .join(Job, Job.id == Item.job_pk)
        .where(Item.job_pk.in_(ids))
    ).all()
    out.items = len(items)
    others = Item.job_pk.not_in(ids)
    docs = {ref for kind, ref, *_ in items if kind == "upload"}
    kept_docs = set(s.scalars(select(Item.source_ref).where(others, Item.source_ref.in_(docs))))
    delete_uploads(
        s, list(s.scalars(select(Upload).where(Upload.document_id.in_(docs - kept_docs)))), out
    )
    for kind, _ref, content, media, job in items:
        shared = s.scalar(
            select(
                exists().where(
                    others,
                    Item.content_id == content,
                    Item.job_pk.in_(
                        select(Job.id).where(
                            Job.user_id == job.user_id,
                            Job.vector_db == job.vector_db,
                            Job.collection == job.collection,
                        )
                    ),
                )
            )
        )
        if vectors and not shared:
            owner = job_tenant(job.collection, job.user_id)
            out.vectors.append((job.vector_db, job.collection, content, owner))
        used_media = s.scalar(select(exists().where(others, Item.media_path == media)))
        if kind != "upload" and media and not used_media:
            out.files.append(media)
            out.recordings.append(media)
    s.execute(delete(Export).where(Export.job_pk.in_(ids)))
    for job in jobs:
        s.delete(job)
    return out


def unused_uploads(s: Session, *, user_id: int | None, before: datetime | None) -> list[Upload]:
    """Uploads no job refers to (a user's, or everyone's), older than ``before`` if given."""
    q = select(Upload).where(~exists().where(Item.source_ref == Upload.document_id))
    if user_id is not None:
        q = q.where(Upload.user_id == user_id)
    if before is not None:
        q = q.where(Upload.created_at <= before)
    return list(s.scalars(q))


def delete_uploads(s: Session, uploads: list[Upload], out: Purged) -> None:
    """Delete upload rows; their files are removed by :func:`finish`."""
    for up in uploads:
        out.files.append(up.path)
        out.recordings.append(up.path)
        out.uploads += 1
        s.delete(up)


def finish(ctx: Context, out: Purged) -> None:
    """After the commit: remove the files and the vectors a deletion listed."""
    for path in out.files:
        Path(path).unlink(missing_ok=True)
    for path in out.recordings:
        with contextlib.suppress(ValueError):  # outside the data dir: ragcast made none
            rendition_path(ctx.settings, Path(path)).unlink(missing_ok=True)
    for store_id, collection, content, owner in out.vectors:
        try:
            store = ctx.providers.vector_store(store_id)
            store.delete_stale(collection, content, keep=0, tenant=owner)
        except Exception:  # noqa: BLE001 - the rows are gone; a store outage is logged only
            log.exception("could not delete the vectors of %s from %s", content, store_id)
