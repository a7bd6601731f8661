"""Vectors made again where a migration changed the text they were made from.

A migration cannot load an embedding model, so one that changes chunk text (``0012``:
recordings' Chinese and Japanese chunks joined without spaces) lists the chunks that
were embedded in ``reembed_chunks``. Where the workers run, :func:`repair_vectors` embeds
each listed chunk again with its job's own model, writes the vector to the job store and
(for an indexed item) to the job's vector store, and takes the chunk off the list, item
by item, each in one transaction. An item still on its way through the pipeline is left
for a later pass (its own index stage must not upsert a vector this pass is replacing).
One process does it at a time (the ``reembed`` lease), so a fleet of workers embeds each
chunk once; a failure leaves the item listed for the next pass.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from ragcast.context import Context
from ragcast.pipeline.stages import ItemStages
from ragcast.retrieval.layout import FINISHED, job_tenant
from ragcast.retrieval.records import chunk_records
from ragcast.store import leases
from ragcast.store.models import Chunk, Item, Job, ReembedChunk

log = logging.getLogger(__name__)

#: the lease whose holder re-embeds
LEASE = "reembed"
LEASE_TTL_S = 300.0
#: seconds between passes while listed chunks wait for their items to finish
PASS_INTERVAL_S = 30.0


def pending(ctx: Context) -> int:
    """How many chunks wait to be embedded again."""
    with ctx.db.session() as s:
        return len(s.scalars(select(ReembedChunk.chunk_id)).all())


def reembed_pass(ctx: Context, holder: str, stop: threading.Event | None = None) -> int:
    """Embed again the listed chunks of every item that is ready; how many were done.

    Does nothing unless ``holder`` takes (or holds) the ``reembed`` lease.
    """
    with ctx.db.session() as s:
        if not leases.acquire(s, LEASE, holder, LEASE_TTL_S):
            return 0
        items = list(
            s.scalars(
                select(Chunk.item_id)
                .join(ReembedChunk, ReembedChunk.chunk_id == Chunk.id)
                .distinct()
                .order_by(Chunk.item_id)
            )
        )
    done = 0
    for item_id in items:
        if stop is not None and stop.is_set():
            break
        with ctx.db.session() as s:
            if not leases.acquire(s, LEASE, holder, LEASE_TTL_S):
                break
            try:
                done += _reembed_item(ctx, s, item_id)
            except Exception:
                s.rollback()
                log.exception("embedding item %d again failed; it is tried again later", item_id)
    return done


def _reembed_item(ctx: Context, s: Session, item_id: int) -> int:
    """Embed the item's listed chunks again and rewrite their vectors (one transaction)."""
    item = s.get(Item, item_id)
    job = s.get(Job, item.job_pk) if item is not None else None
    if item is None or job is None:
        return 0
    indexed = item.stage == "indexed"
    if not indexed and job.status not in FINISHED:
        return 0  # still in the pipeline: repaired once its index stage is done
    ids = list(
        s.scalars(
            select(ReembedChunk.chunk_id)
            .join(Chunk, Chunk.id == ReembedChunk.chunk_id)
            .where(Chunk.item_id == item_id)
        )
    )
    s.execute(update(Chunk).where(Chunk.id.in_(ids)).values(embedding=None, multi_embedding=None))
    # the pipeline's own embedding: the job's model, its batches, late chunking in context
    ItemStages(ctx, incremental=False).embed_many(s, [item], job)
    if indexed:
        rows = s.scalars(select(Chunk).where(Chunk.id.in_(ids)).order_by(Chunk.chunk_index)).all()
        store = ctx.providers.vector_store(job.vector_db)
        store.ensure_collection(job.collection, job.dimensions)
        records = chunk_records(ctx, job, [(item, c) for c in rows])
        store.upsert(job.collection, records, tenant=job_tenant(job.collection, job.user_id))
    s.execute(delete(ReembedChunk).where(ReembedChunk.chunk_id.in_(ids)))
    s.commit()
    return len(ids)


def repair_vectors(ctx: Context, stop: threading.Event) -> int:
    """Passes of :func:`reembed_pass` until nothing is listed or ``stop`` is set; safe in
    a background thread of every process that runs workers. Returns the chunks done."""
    holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
    done = 0
    while not stop.is_set():
        try:
            if not pending(ctx):
                break
            done += reembed_pass(ctx, holder, stop)
            if not pending(ctx):
                break
        except Exception:
            log.exception("embedding changed chunks again failed; tried again later")
        stop.wait(PASS_INTERVAL_S)
    if done:
        log.info("embedded %d chunks again whose text had changed", done)
    return done
