"""Where vectors live: one collection per embedding model, users as tenants in it.

A job's vectors go to ``ragcast-<model key>`` (``ragcast-local-use-multilingual-v3-512``)
under the tenant ``u<user id>``: a Pinecone namespace, a Qdrant tenant field, a pgvector
column, a Chroma metadata field. A user's search reads their own tenant only, so its cost
does not grow with how many jobs they (or other users) have.

Releases before this layout kept one collection per user and model
(``ragcast-u<user>-<key>``). :func:`migrate_collections` moves such jobs over: their
vectors are written again from the job store (which keeps every chunk's vector, so
nothing is embedded twice), the job is pointed at the shared collection, and a legacy
collection is dropped once no job uses it. Until a job has moved, search still reads it
where it was.
"""

from __future__ import annotations

import logging
import re
import threading

from sqlalchemy import func, select

from ragcast.context import Context
from ragcast.providers.embedders.base import EmbeddingSpec
from ragcast.retrieval.records import embedding_spec, index_records
from ragcast.store.models import Item, Job

log = logging.getLogger(__name__)

_LEGACY = re.compile(r"^ragcast-u\d+-")
#: jobs that no longer write vectors: a running job moves at a later start
FINISHED = ("completed", "failed", "cancelled")


def collection_name(spec: EmbeddingSpec) -> str:
    """The shared collection of an embedding model."""
    return f"ragcast-{spec.key}"


def tenant(user_id: int) -> str:
    """A user's tenant name, in vector stores and the lexical index."""
    return f"u{user_id}"


def job_tenant(collection: str, user_id: int) -> str | None:
    """The tenant to read and write a job's vectors with: None in a legacy collection."""
    return None if _LEGACY.match(collection) else tenant(user_id)


def migrate_collections(ctx: Context, stop: threading.Event | None = None) -> int:
    """Move every job still in a per-user collection to its model's shared collection.

    Only finished jobs move (a running one could index an item into the old collection
    after its move); the others move at a later start. Safe to run in several processes
    at once (upserts are idempotent, and a job moves in one update) and to stop between
    jobs (``stop``); returns how many jobs moved.
    """
    with ctx.db.session() as s:
        jobs = [
            (j.id, j.user_id, j.vector_db, j.collection, j.dimensions, embedding_spec(j))
            for j in s.scalars(
                select(Job).where(Job.collection.like("ragcast-u%"), Job.status.in_(FINISHED))
            )
            if _LEGACY.match(j.collection)
        ]
    moved = 0
    for job_pk, user_id, store_id, old, dims, spec in jobs:
        if stop is not None and stop.is_set():
            break
        new = collection_name(spec)
        store = ctx.providers.vector_store(store_id)
        store.ensure_collection(new, dims)
        with ctx.db.session() as s:
            job = s.get(Job, job_pk)
            if job is None or job.collection != old:
                continue
            items = s.scalars(
                select(Item).where(Item.job_pk == job_pk, Item.stage == "indexed")
            ).all()
            for item in items:
                records = index_records(ctx, s, item, job)
                if records:
                    store.upsert(new, records, tenant=tenant(user_id))
            job.collection = new
            s.commit()
        moved += 1
        with ctx.db.session() as s:
            left = s.scalar(select(func.count(Job.id)).where(Job.collection == old))
        if not left:
            store.drop_collection(old)
            log.info("legacy collection %s moved to %s and dropped", old, new)
    return moved
