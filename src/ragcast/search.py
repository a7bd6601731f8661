"""Search: a query embedded with a job's model, looked up in that job's collection."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ragcast.context import Context
from ragcast.pipeline.stages import embedding_spec
from ragcast.providers.vectorstores.base import VectorHit
from ragcast.store.models import Chunk, Item, Job


def search(
    ctx: Context,
    user_id: int,
    query: str,
    *,
    job_id: str | None,
    top_k: int,
    content_id: str | None = None,
    platform: str | None = None,
    language: str | None = None,
) -> list[VectorHit]:
    """The user's best chunks for ``query``: in one job, or across all their jobs.

    Jobs are grouped by collection (one per embedding model); each group is queried
    with its own model and filtered to the contents of those jobs (and to
    ``content_id``, ``platform`` and the items' ``language`` when given), and the hits
    are merged by score.
    """
    with ctx.db.session() as s:
        q = select(Job).where(Job.user_id == user_id, Job.completed_items > 0)
        if job_id is not None:
            q = select(Job).where(Job.user_id == user_id, Job.job_id == job_id)
        if platform is not None:
            q = q.where(Job.platform == platform)
        jobs = s.scalars(q).all()
        groups: dict[tuple[str, str], list[Job]] = defaultdict(list)
        for job in jobs:
            groups[(job.vector_db, job.collection)].append(job)
        wanted = [Item.status == "completed"]
        if language is not None:
            wanted.append(Item.language == language)
        contents = {
            job.id: list(s.scalars(select(Item.content_id).where(Item.job_pk == job.id, *wanted)))
            for job in jobs
        }
    hits: list[VectorHit] = []
    for (store_id, collection), group in groups.items():
        ids = sorted({c for job in group for c in contents[job.id]})
        if content_id is not None:
            ids = [c for c in ids if c == content_id]
        if not ids:
            continue
        embedder = ctx.providers.embedder(embedding_spec(group[0]))
        vector = embedder.embed_query(query)
        where = {"content_id": {"$in": ids}} if len(ids) > 1 else {"content_id": ids[0]}
        store = ctx.providers.vector_store(store_id)
        hits.extend(store.query(collection, vector.tolist(), top_k, where))
    hits.sort(key=lambda h: h.score, reverse=True)
    hits = hits[:top_k]
    if any(h.metadata.get("text_truncated") for h in hits):
        with ctx.db.session() as s:
            _full_texts(s, [job.id for job in jobs], hits)
    return hits


def _full_texts(s: Session, job_pks: list[int], hits: list[VectorHit]) -> None:
    """Replace text a store trimmed (Pinecone's metadata cap) with the stored chunk's."""
    for hit in hits:
        meta: dict[str, Any] = hit.metadata
        if not meta.pop("text_truncated", False):
            continue
        text = s.scalar(
            select(Chunk.text)
            .join(Item, Item.id == Chunk.item_id)
            .where(
                Item.job_pk.in_(job_pks),
                Item.content_id == str(meta.get("content_id")),
                Chunk.chunk_index == int(meta.get("chunk_index", -1)),
            )
            .order_by(Item.id.desc())
            .limit(1)
        )
        if text is not None:
            hit.text = text
