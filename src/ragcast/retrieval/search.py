"""Search a user's chunks: dense, lexical, or both fused (the default).

The dense side embeds the query once per embedding model the user's jobs used and reads
each model's shared collection in the user's tenant; the lexical side reads the user's
rows of the lexical index. Both apply the same :class:`~ragcast.retrieval.filters.Filters`,
both return more candidates than asked for, and chunks are matched across them by
``(content_id, chunk_index)``, so a chunk indexed by two jobs counts once. The fused list
may be reranked, and each hit can bring its neighbouring chunks as one passage.

Scores are on the fixed 0-1 scale of :mod:`ragcast.retrieval.scores` in every mode; hits
of no relevance (under :data:`~ragcast.retrieval.scores.NOTHING`) and under the query's
``min_score`` are left out, so a query about nothing indexed finds nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ragcast.context import Context
from ragcast.providers.vectorstores.base import VectorHit
from ragcast.retrieval.filters import Filters
from ragcast.retrieval.fusion import ALPHA, Fusion, fuse
from ragcast.retrieval.layout import job_tenant
from ragcast.retrieval.lexical import lexical_index
from ragcast.retrieval.records import embedding_spec, vector_metadata
from ragcast.retrieval.rerank import rerank_hits
from ragcast.retrieval.scores import NOTHING, cosine_scale, lexical_share
from ragcast.retrieval.types import MODES, Hit, Key, Mode, Passage, Query
from ragcast.store.models import Chunk, Item, Job
from ragcast.text import join_words

#: candidates each side returns, at least (``top_k`` x 3 when more)
DEPTH = 30
#: candidates handed to the reranker
RERANK_DEPTH = 30

__all__ = ["MODES", "Hit", "Key", "Mode", "Passage", "Query", "search", "merge_overlapping"]


def search(
    ctx: Context, user_id: int, q: Query, *, fusion: Fusion = "convex", alpha: float = ALPHA
) -> list[Hit]:
    """The user's best chunks for ``q``."""
    depth = max(DEPTH, q.top_k * 3, RERANK_DEPTH if q.rerank else 0)
    dense: dict[Key, VectorHit] = {}
    if q.mode != "lexical":
        dense = _dense(ctx, user_id, q, depth)
    lexical: dict[Key, tuple[int, float]] = {}
    ceiling = 0.0
    if q.mode != "dense":
        with ctx.db.session() as s:
            lexical, ceiling = _lexical(s, user_id, q, depth)
    if q.mode == "hybrid":
        ranked = fuse(
            [(k, h.score) for k, h in dense.items()],
            [(k, score) for k, (_, score) in lexical.items()],
            fusion,
            alpha,
            ceiling,
        )
    else:  # one side only: its own scores (scaled cosine or share of the ceiling)
        own = {k: h.score for k, h in dense.items()} | {
            k: lexical_share(v, ceiling) for k, (_, v) in lexical.items()
        }
        ranked = sorted(own.items(), key=lambda kv: kv[1], reverse=True)
    least = max(NOTHING, q.min_score)
    ranked = [(k, score) for k, score in ranked if score >= least]
    keep = ranked[: RERANK_DEPTH if q.rerank else q.top_k]
    with ctx.db.session() as s:
        hits = _materialise(s, keep, dense, {k: c for k, (c, _) in lexical.items()})
        _full_texts(s, user_id, hits)
        if q.rerank:
            hits = rerank_hits(ctx.settings, q.text, hits)
        hits = hits[: q.top_k]
        if q.context > 0:
            for hit in hits:
                hit.context = _passage(s, user_id, hit, q.context)
    return hits


def _groups(ctx: Context, user_id: int, f: Filters) -> list[Job]:
    """One job per (store, collection) the user's jobs wrote to: how to read each."""
    with ctx.db.session() as s:
        q = select(func.max(Job.id)).where(Job.user_id == user_id)
        if f.job_id is not None:
            q = q.where(Job.job_id == f.job_id)
        else:
            q = q.where(Job.completed_items > 0)
        if f.platform is not None:
            q = q.where(Job.platform == f.platform)
        ids = list(s.scalars(q.group_by(Job.vector_db, Job.collection)))
        jobs = list(s.scalars(select(Job).where(Job.id.in_(ids))))
        for job in jobs:
            s.expunge(job)
        return jobs


def _job_contents(ctx: Context, job: Job) -> list[str]:
    with ctx.db.session() as s:
        return sorted(
            set(
                s.scalars(
                    select(Item.content_id).where(Item.job_pk == job.id, Item.status == "completed")
                )
            )
        )


def _dense(ctx: Context, user_id: int, q: Query, depth: int) -> dict[Key, VectorHit]:
    """Dense hits by key, each scored on the 0-1 scale of the model that found it."""
    found: dict[Key, VectorHit] = {}
    for job in _groups(ctx, user_id, q.filters):
        contents = _job_contents(ctx, job) if q.filters.job_id is not None else None
        if contents == []:
            continue
        embedder = ctx.providers.embedder(embedding_spec(job))
        vector = embedder.embed_query(q.text)
        scale = cosine_scale(embedder.model_name or embedder.id)
        store = ctx.providers.vector_store(job.vector_db)
        for raw in store.query(
            job.collection,
            vector.tolist(),
            depth,
            q.filters.vector_where(contents),
            tenant=job_tenant(job.collection, user_id),
        ):
            hit = VectorHit(raw.id, scale.score(raw.score), raw.text, raw.metadata)
            key = (str(hit.metadata.get("content_id")), int(hit.metadata.get("chunk_index", 0)))
            if key not in found or found[key].score < hit.score:
                found[key] = hit
    return found


def _lexical(
    s: Session, user_id: int, q: Query, depth: int
) -> tuple[dict[Key, tuple[int, float]], float]:
    """Lexical hits by key, ``(chunk id, BM25)`` with a key's best chunk, and the ceiling."""
    result = lexical_index(s).search(s, user_id, q.text, q.filters, depth)
    hits = result.hits
    if not hits:
        return {}, result.ceiling
    keys = {
        int(r[0]): (str(r[1]), int(r[2]))
        for r in s.execute(
            select(Chunk.id, Item.content_id, Chunk.chunk_index)
            .join(Item, Item.id == Chunk.item_id)
            .where(Chunk.id.in_([h.chunk_id for h in hits]))
        )
    }
    out: dict[Key, tuple[int, float]] = {}
    for h in hits:
        key = keys.get(h.chunk_id)
        if key is not None and key not in out:
            out[key] = (h.chunk_id, h.score)
    return out, result.ceiling


def _materialise(
    s: Session,
    ranked: Sequence[tuple[Key, float]],
    dense: dict[Key, VectorHit],
    chunk_ids: dict[Key, int],
) -> list[Hit]:
    """Hits with text and metadata: from the vector store, or from the job store."""
    stored = _stored(s, [chunk_ids[k] for k, _ in ranked if k not in dense])
    hits = []
    for key, score in ranked:
        if key in dense:
            hits.append(Hit(score, dense[key].text, dict(dense[key].metadata)))
        else:
            text, meta = stored[chunk_ids[key]]
            hits.append(Hit(score, text, meta))
    return hits


def _stored(s: Session, chunk_ids: Iterable[int]) -> dict[int, tuple[str, dict[str, Any]]]:
    ids = list(chunk_ids)
    if not ids:
        return {}
    rows = s.execute(
        select(Chunk, Item, Job)
        .join(Item, Item.id == Chunk.item_id)
        .join(Job, Job.id == Item.job_pk)
        .where(Chunk.id.in_(ids))
    ).tuples()
    return {c.id: (c.text, vector_metadata(j, i, c)) for c, i, j in rows}


def _item_of(s: Session, user_id: int, content_id: str) -> int | None:
    """The user's latest indexed item of a content."""
    return s.scalar(
        select(Item.id)
        .join(Job, Job.id == Item.job_pk)
        .where(Job.user_id == user_id, Item.content_id == content_id, Item.stage == "indexed")
        .order_by(Item.id.desc())
        .limit(1)
    )


def _full_texts(s: Session, user_id: int, hits: list[Hit]) -> None:
    """Replace text a store trimmed (Pinecone's metadata cap) with the stored chunk's."""
    for hit in hits:
        if not hit.metadata.pop("text_truncated", False):
            continue
        text = s.scalar(
            select(Chunk.text)
            .join(Item, Item.id == Chunk.item_id)
            .join(Job, Job.id == Item.job_pk)
            .where(
                Job.user_id == user_id,
                Item.content_id == str(hit.metadata.get("content_id")),
                Chunk.chunk_index == int(hit.metadata.get("chunk_index", -1)),
            )
            .order_by(Item.id.desc())
            .limit(1)
        )
        if text is not None:
            hit.text = text


def _passage(s: Session, user_id: int, hit: Hit, n: int) -> Passage | None:
    """The hit's chunk with ``n`` neighbours on each side, overlaps merged."""
    item_id = _item_of(s, user_id, str(hit.metadata.get("content_id")))
    if item_id is None:
        return None
    index = int(hit.metadata.get("chunk_index", 0))
    rows = s.execute(
        select(Chunk.chunk_index, Chunk.text, Chunk.start_s, Chunk.end_s)
        .where(Chunk.item_id == item_id, Chunk.chunk_index.between(index - n, index + n))
        .order_by(Chunk.chunk_index)
    ).all()
    if not rows:
        return None
    starts = [r.start_s for r in rows if r.start_s is not None]
    ends = [r.end_s for r in rows if r.end_s is not None]
    return Passage(
        text=merge_overlapping([r.text for r in rows]),
        start_s=min(starts) if starts else None,
        end_s=max(ends) if ends else None,
        first_chunk=rows[0].chunk_index,
        last_chunk=rows[-1].chunk_index,
    )


def merge_overlapping(texts: Sequence[str], longest: int = 4000) -> str:
    """Consecutive chunks as one text: where a chunk starts with the end of the one
    before it (the chunk overlap), that part is written once."""
    out = texts[0] if texts else ""
    for nxt in texts[1:]:
        shared = _overlap(out, nxt, longest)
        if shared:
            out += nxt[shared:]
        elif nxt:
            out = join_words([out, nxt])  # a recording's CJK chunks meet without a space
    return out


def _overlap(before: str, after: str, longest: int, shortest: int = 8) -> int:
    """The longest ``n >= shortest`` such that ``before`` ends with ``after[:n]``, else 0
    (chunk overlaps are whole tokens, many of them: a few shared letters are chance)."""
    probe = after[:shortest]
    if len(probe) < shortest:
        return 0
    at = before.find(probe, max(0, len(before) - longest))
    while at != -1:
        if after.startswith(before[at:]):
            return len(before) - at  # the leftmost match is the longest
        at = before.find(probe, at + 1)
    return 0
