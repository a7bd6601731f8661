"""Jobs written straight into a store, as the pipeline leaves them: for the read tests."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from ragcast.context import Context
from ragcast.store.models import Item, Job, User

#: the statuses seeded items take in turn
ITEM_STATUSES = ("completed", "completed", "failed", "pending", "processing")


def seed_job(ctx: Context, user: str, job_id: str, items: int, *, finished: bool = True) -> int:
    """A job of user ``user`` with ``items`` items (statuses in turn from
    :data:`ITEM_STATUSES`); returns its primary key."""
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
        s.add_all(
            Item(
                job_pk=job.id,
                index=n,
                content_id=f"doc-{n}",
                source_type="upload",
                source_ref=f"doc-{n}.txt",
                title=f"Document {n}",
                status=ITEM_STATUSES[n % len(ITEM_STATUSES)],
                stage="indexed",
                error="unreadable" if ITEM_STATUSES[n % len(ITEM_STATUSES)] == "failed" else None,
            )
            for n in range(items)
        )
        return int(job.id)
