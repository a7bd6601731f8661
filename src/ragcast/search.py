"""Search: a query embedded with a job's model, looked up in that job's collection."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import select

from ragcast.context import Context
from ragcast.pipeline.stages import embedding_spec
from ragcast.providers.vectorstores.base import VectorHit
from ragcast.store.models import Item, Job


def search(
    ctx: Context, user_id: int, query: str, *, job_id: str | None, top_k: int
) -> list[VectorHit]:
    """The user's best chunks for ``query``: in one job, or across all their jobs.

    Jobs are grouped by collection (one per embedding model); each group is queried
    with its own model and filtered to the contents of those jobs, and the hits are
    merged by score.
    """
    with ctx.db.session() as s:
        q = select(Job).where(Job.user_id == user_id, Job.completed_items > 0)
        if job_id is not None:
            q = select(Job).where(Job.user_id == user_id, Job.job_id == job_id)
        jobs = s.scalars(q).all()
        groups: dict[tuple[str, str], list[Job]] = defaultdict(list)
        for job in jobs:
            groups[(job.vector_db, job.collection)].append(job)
        contents = {
            job.id: list(
                s.scalars(
                    select(Item.content_id).where(Item.job_pk == job.id, Item.status == "completed")
                )
            )
            for job in jobs
        }
    hits: list[VectorHit] = []
    for (store_id, collection), group in groups.items():
        ids = sorted({c for job in group for c in contents[job.id]})
        if not ids:
            continue
        embedder = ctx.providers.embedder(embedding_spec(group[0]))
        vector = embedder.embed_query(query)
        where = {"content_id": {"$in": ids}} if len(ids) > 1 else {"content_id": ids[0]}
        store = ctx.providers.vector_store(store_id)
        hits.extend(store.query(collection, vector.tolist(), top_k, where))
    hits.sort(key=lambda h: h.score, reverse=True)
    return hits[:top_k]
