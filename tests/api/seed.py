"""Jobs written straight into a store, as the pipeline leaves them: for the read tests."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import select

from ragcast.context import Context
from ragcast.store.models import Item, Job, User

#: the statuses seeded items take in turn
ITEM_STATUSES = ("completed", "completed", "failed", "pending", "processing")


def seed_job(
    ctx: Context,
    user: str,
    job_id: str,
    items: int,
    *,
    finished: bool = True,
    statuses: Sequence[str] = ITEM_STATUSES,
) -> int:
    """A job of user ``user`` with ``items`` items (statuses in turn from ``statuses``);
    returns its primary key. Completed items carry three chunks of English text."""
    now = datetime.now(UTC)
    with ctx.db.session() as s:
        user_id = s.scalar(select(User.id).where(User.name == user))
        assert user_id is not None, f"no user {user}"
        job = Job(
            job_id=job_id,
            user_id=user_id,
            request_hash="0" * 64,
            request={},
            platform="documents",
            input_method="upload",
            embedding_model="local",
            dimensions=512,
            vector_db="chroma",
            collection="seeded",
            status="completed" if finished else "processing",
            progress=100.0 if finished else 40.0,
            stage="Processing completed successfully!" if finished else "Processing",
            content_processed=items if finished else 0,
            total_content=items,
            completed_items=items if finished else 0,
            embeddings=0,
            processing_time=1.5 if finished else None,
            started_at=now,
            finished_at=now if finished else None,
        )
        s.add(job)
        s.flush()
        s.add_all(_item(job.id, n, statuses[n % len(statuses)]) for n in range(items))
        return int(job.id)


def _item(job_pk: int, n: int, status: str) -> Item:
    done = status == "completed"
    return Item(
        job_pk=job_pk,
        index=n,
        content_id=f"doc-{n}",
        source_type="upload",
        source_ref=f"doc-{n}.txt",
        title=f"Document {n}",
        status=status,
        stage="indexed",
        error="unreadable" if status == "failed" else None,
        transcript_source="document" if done else None,
        chunk_count=3 if done else 0,
        token_count=700 if done else 0,
        attempts=1 if done else 0,
        language="en" if done else None,
    )
