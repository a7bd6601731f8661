"""What is kept of each recording once the jobs using it are done (issue 27).

``RAGCAST_KEEP_MEDIA``, or a job's ``settings.keepMedia``: ``original`` keeps the file,
``audio`` keeps its audio rendition only (made whatever the original's format; the
original is deleted) and ``none`` keeps nothing. A recording is decided once every job
using it has finished (an upload may serve several jobs; a platform file every item of
its content, whoever's) and one of their items completed, so a job still queued on it
keeps it, and a recording no job got through stays for another try. It then keeps the
most that any of those jobs asks for, and never more than is still on disk.

The decision is recorded on the upload and the items (``media_kept``) in the transaction
that closes the job (the renditions it keeps are made just before, with no transaction
open), and the files go after the commit; at start-up :func:`sweep` finishes what a crash
interrupted: files a decision no longer keeps, and finished jobs left undecided.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.orm import Session

from ragcast.context import Context
from ragcast.errors import ConfigurationError, MediaError
from ragcast.pipeline.media import exclusive, make_rendition, rendition_path
from ragcast.settings import Settings
from ragcast.spec import KeepMedia, job_keep_media
from ragcast.store.models import Item, Job, Upload

log = logging.getLogger(__name__)

#: retention modes by how much they keep
RANK: dict[str, int] = {"none": 0, "audio": 1, "original": 2}


@dataclass(frozen=True, slots=True)
class Retained:
    """The retention decided for one recording: an upload's, or a platform file's."""

    original: Path
    rendition: Path
    mode: KeepMedia
    #: the upload's document id; None for a platform item's fetched file
    document_id: str | None


@dataclass
class RetentionPlan:
    """What closing a job decides for its recordings, and whether any had to wait."""

    steps: list[Retained] = field(default_factory=list)
    #: a recording was left undecided because another job using it had not finished
    waited: bool = False


def _on_disk(original: Path, rendition: Path) -> KeepMedia:
    if original.is_file():
        return "original"
    return "audio" if rendition.is_file() else "none"


def _decide(
    settings: Settings, users: list[Any], original: Path, rendition: Path
) -> KeepMedia | None:
    """The retention of a recording from ``(item status, job pk, finished_at, request)``
    of the items using it, their jobs all finished; None while undecided."""
    if not any(status == "completed" for status, *_ in users):
        return None  # no job got through it: kept for another try
    asked = {
        job_pk: job_keep_media(request, settings.keep_media) for _, job_pk, _, request in users
    }
    most = max(asked.values(), key=RANK.__getitem__)
    return min(most, _on_disk(original, rendition), key=RANK.__getitem__)


def plan_retention(
    s: Session, settings: Settings, job_pk: int, *, closing: bool = False
) -> RetentionPlan:
    """The retention of each recording job ``job_pk`` used (``closing``: counting the
    job as finished, before its close commits)."""
    rows = s.execute(
        select(Item.source_type, Item.source_ref, Item.media_path, Item.content_type).where(
            Item.job_pk == job_pk
        )
    ).all()
    plan = RetentionPlan()
    docs = {ref for source, ref, _, _ in rows if source == "upload"}
    paths = {
        media
        for source, _, media, ctype in rows
        if source != "upload" and media and (ctype or "").startswith(("audio/", "video/"))
    }
    usage = select(Item.status, Job.id, Job.finished_at, Job.request).join(
        Job, Job.id == Item.job_pk
    )
    candidates: list[tuple[str | None, str, ColumnElement[bool]]] = []
    for up in s.scalars(
        select(Upload).where(Upload.document_id.in_(docs), Upload.kind.in_(("audio", "video")))
    ):
        used = and_(Item.source_type == "upload", Item.source_ref == up.document_id)
        candidates.append((up.document_id, up.path, used))
    candidates += [(None, path, Item.media_path == path) for path in sorted(paths)]
    for document_id, path, used in candidates:
        original = Path(path)
        try:
            rendition = rendition_path(settings, original)
        except ValueError:
            continue
        users = list(s.execute(usage.where(used)).all())
        if any(done is None and not (closing and job == job_pk) for _, job, done, _ in users):
            plan.waited = True  # decided when that job closes
            continue
        mode = _decide(settings, users, original, rendition)
        if mode is not None:
            plan.steps.append(Retained(original, rendition, mode, document_id))
    return plan


def prepare(settings: Settings, plan: RetentionPlan) -> RetentionPlan:
    """The plan with the renditions its ``audio`` steps keep made (no transaction is
    open: ffmpeg may take a while); a step whose rendition cannot be made is dropped,
    its recording kept as it is and decided again at the next start."""
    ready = RetentionPlan(waited=plan.waited)
    for step in plan.steps:
        if step.mode == "audio" and not step.rendition.is_file():
            try:
                make_rendition(settings, step.original)
            except (MediaError, ConfigurationError) as exc:
                log.warning("%s kept as it is: %s", step.original.name, exc.message)
                continue
        ready.steps.append(step)
    return ready


def record(s: Session, plan: RetentionPlan) -> None:
    """Write the decisions on the uploads and the items using each recording."""
    for step in plan.steps:
        if step.document_id is not None:
            s.execute(
                update(Upload)
                .where(Upload.document_id == step.document_id)
                .values(media_kept=step.mode)
                .execution_options(synchronize_session=False)
            )
            used = and_(Item.source_type == "upload", Item.source_ref == step.document_id)
        else:
            used = Item.media_path == str(step.original)
        s.execute(
            update(Item)
            .where(used)
            .values(media_kept=step.mode)
            .execution_options(synchronize_session=False)
        )


def discard(settings: Settings, steps: Iterable[Retained]) -> None:
    """Delete what the decided steps do not keep (after their decisions committed)."""
    for step in steps:
        try:
            remove(settings, step.original, step.mode, platform=step.document_id is None)
        except OSError as exc:  # decided all the same: the sweep deletes it at the next start
            log.warning("%s not deleted: %s", step.original.name, exc)


def remove(settings: Settings, original: Path, mode: str, *, platform: bool = False) -> None:
    """Delete what ``mode`` does not keep of a recording, under its lock (a rendition
    being made from it is finished first)."""
    if mode == "original":
        return
    with exclusive(original):
        original.unlink(missing_ok=True)
        if mode == "none":
            with contextlib.suppress(ValueError):
                rendition_path(settings, original).unlink(missing_ok=True)
    if platform:  # the content's folder under media/, once empty
        with contextlib.suppress(OSError, ValueError):
            if original.parent.parent == settings.data_path("media"):
                original.parent.rmdir()


def retain_job(ctx: Context, job_pk: int) -> None:
    """Decide and apply the retention of a finished job's recordings, each in its own
    short transaction (the sweep's path, and a close whose recordings had to wait)."""
    with ctx.db.session() as s:
        plan = plan_retention(s, ctx.settings, job_pk)
    if not plan.steps:
        return
    plan = prepare(ctx.settings, plan)
    with ctx.db.session() as s:
        record(s, plan)
    discard(ctx.settings, plan.steps)


def sweep(ctx: Context) -> None:
    """Finish retention a crash interrupted: delete files a decision no longer keeps
    (unless a job now running uses them again), and decide for finished jobs whose
    recordings were left undecided."""
    settings = ctx.settings
    with ctx.db.session() as s:
        leftovers = [
            (Path(p), str(m), False)
            for p, m, doc in s.execute(
                select(Upload.path, Upload.media_kept, Upload.document_id).where(
                    Upload.media_kept.in_(("audio", "none"))
                )
            )
            if not _in_use(s, and_(Item.source_type == "upload", Item.source_ref == doc))
        ]
        leftovers += [
            (Path(str(p)), str(m), True)
            for p, m in s.execute(
                select(Item.media_path, Item.media_kept)
                .where(
                    Item.source_type != "upload",
                    Item.media_path.is_not(None),
                    Item.media_kept.in_(("audio", "none")),
                )
                .distinct()
            )
            if not _in_use(s, Item.media_path == p)
        ]
        undecided = list(
            s.scalars(
                select(Item.job_pk)
                .join(Job, Job.id == Item.job_pk)
                .where(
                    Job.finished_at.is_not(None),
                    Item.status == "completed",
                    Item.media_kept.is_(None),
                    or_(Item.content_type.like("audio/%"), Item.content_type.like("video/%")),
                    or_(Item.source_type == "upload", Item.media_path.is_not(None)),
                )
                .distinct()
            )
        )
    for original, mode, platform in leftovers:
        try:
            stale = original.is_file() or (
                mode == "none" and rendition_path(settings, original).is_file()
            )
        except ValueError:
            continue
        if stale:
            remove(settings, original, mode, platform=platform)
    for job_pk in undecided:
        retain_job(ctx, job_pk)
    if undecided:
        log.info("media retention decided for %d finished jobs", len(undecided))


def _in_use(s: Session, used: ColumnElement[bool]) -> bool:
    """Whether an unfinished job has an item using the recording."""
    return (
        s.scalar(
            select(Item.id)
            .join(Job, Job.id == Item.job_pk)
            .where(used, Job.finished_at.is_(None))
            .limit(1)
        )
        is not None
    )
