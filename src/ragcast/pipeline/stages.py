"""The per-item stages: fetch → transcript → speakers → chunk → embed → index.

Each stage reads the previous stage's checkpoint from the store and writes its own,
so a retried or recovered item resumes after its last finished stage. ``Item.stage``
names the last finished stage.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
from sqlalchemy import ColumnElement, delete, or_, select, update
from sqlalchemy.orm import Session

from ragcast.context import Context
from ragcast.errors import ItemError, MediaError, TransientError
from ragcast.pipeline import media, voices
from ragcast.pipeline.archive import DocumentLimits
from ragcast.pipeline.chunk import chunk_transcript
from ragcast.pipeline.documents import parse_document
from ragcast.pipeline.script import in_script
from ragcast.pipeline.speakers import chunk_speaker_rows, display_name, label_transcript, load_audio
from ragcast.pipeline.types import ChunkSpec, TextChunk
from ragcast.pipeline.types import Transcript as TranscriptData
from ragcast.providers.embedders.base import Embedder, Vectors
from ragcast.retrieval.layout import job_tenant
from ragcast.retrieval.lexical import lexical_index
from ragcast.retrieval.records import (
    chunk_records,
    embedding_spec,
)
from ragcast.spec import job_chinese_script, job_diarize, job_language
from ragcast.store.models import Chunk, Item, Job, Transcript, Upload

#: finished-stage name → share of the item's work done once it is finished
STAGES: dict[str, float] = {
    "queued": 0.0,
    "fetched": 0.05,
    "transcribed": 0.65,
    "diarized": 0.68,
    "chunked": 0.70,
    "embedded": 0.90,
    "indexed": 1.0,
}
#: what an item is doing while it works towards each finished stage
ACTIVE: dict[str, str] = {
    "fetched": "fetching",
    "transcribed": "transcribing",
    "diarized": "diarizing",
    "chunked": "chunking",
    "embedded": "embedding",
    "indexed": "indexing",
}
ORDER = list(STAGES)


class BackendUnavailable(TransientError):
    """A service the pipeline runs on is down (the job store, the vector database, the
    data dir's disk), not a fault of the items: retried like any transient failure, and
    after the last retry the items are left at their last finished stage, unfailed, for
    the reconciler to send again once the service is back (runner/reconciler.py)."""


def _vector_db_down(exc: Exception) -> BackendUnavailable | None:
    """``exc`` as the vector database being unreachable, or None when it is not that."""
    import httpx

    if isinstance(exc, TransientError):  # the stores' own word for an outage
        return BackendUnavailable(f"the vector database is unavailable: {exc.message}")
    if isinstance(exc, httpx.TransportError | ConnectionError | TimeoutError):
        return BackendUnavailable(f"the vector database is unreachable: {exc}")
    if isinstance(exc, ValueError) and "could not connect" in str(exc).lower():
        return BackendUnavailable(f"the vector database is unreachable: {exc}")  # chroma
    return None


def job_stages(job: Job) -> list[str]:
    """The stages a job's items go through: ``diarized`` only when the job asks for it."""
    return ORDER if job_diarize(job.request) is not None else [s for s in ORDER if s != "diarized"]


def chunk_spec(job: Job, embedder: Embedder) -> ChunkSpec:
    """The job's chunk sizes, capped by what the embedding model reads in one input."""
    settings = job.request.get("settings") or {}
    size = int(settings.get("chunkSize", 1024))
    overlap = int(settings.get("chunkOverlap", 100))
    max_tokens = min(int(settings.get("maxTokens", 8192)), embedder.max_tokens)
    size = min(size, max_tokens)
    return ChunkSpec(chunk_size=size, chunk_overlap=min(overlap, size // 2), max_tokens=max_tokens)


class ItemStages:
    """Runs the stages of items against the store and the backends.

    ``incremental``: an item alone commits its embeddings batch by batch, so a long
    recording interrupted mid-way keeps what it embedded; items of a batch finish in one
    transaction (each in a savepoint) and commit nothing on their own.
    """

    def __init__(self, ctx: Context, *, incremental: bool = True) -> None:
        self.ctx = ctx
        self.incremental = incremental

    def runner(self, stage: str) -> Callable[[Session, Item, Job], None]:
        """The function that produces finished stage ``stage``."""
        return {
            "fetched": self.fetch,
            "transcribed": self.transcribe,
            "diarized": self.diarize,
            "chunked": self.chunk,
            "embedded": self.embed,
            "indexed": self.index,
        }[stage]

    def batch_runner(self, stage: str) -> Callable[[Session, list[Item], Job], None] | None:
        """The function that produces ``stage`` for several items at once, where one does."""
        return {"embedded": self.embed_many, "indexed": self.index_many}.get(stage)

    # -- fetch ------------------------------------------------------------------------
    def fetch(self, s: Session, item: Item, job: Job) -> None:
        """Put the item's media on local disk."""
        if item.source_type == "upload":
            upload = s.scalar(select(Upload).where(Upload.document_id == item.source_ref))
            kept = None if upload is None else self._kept_media(upload)
            if upload is None or kept is None:
                raise ItemError(f"uploaded document {item.source_ref} is no longer available")
            item.media_path = str(kept)
            item.content_type = (
                upload.content_type if kept == Path(upload.path) else media.RENDITION_TYPE
            )
            return
        from ragcast.pipeline.fetch import fetch_platform_item

        fetch_platform_item(self.ctx, s, item, job)

    def _kept_media(self, upload: Upload) -> Path | None:
        """The upload's file, or its audio rendition where retention kept only that."""
        original = Path(upload.path)
        if original.is_file():
            return original
        if upload.media_kept != "audio":
            return None
        try:
            rendition = media.rendition_path(self.ctx.settings, original)
        except ValueError:
            return None
        return rendition if rendition.is_file() else None

    # -- transcript -------------------------------------------------------------------
    def transcribe(self, s: Session, item: Item, job: Job) -> None:
        """Speech-to-text for media, parsing for documents; stored once."""
        if s.get(Transcript, item.id) is not None:
            return  # a finished transcript is never recomputed
        if item.media_path is None:
            raise ItemError("item has no media to transcribe")
        path = Path(item.media_path)
        ctype = item.content_type or ""
        named = job_language(job.request)
        if ctype.startswith(("audio/", "video/")):
            data = self.ctx.providers.transcriber().transcribe(
                path, language=named, should_stop=self.ctx.stopping.is_set
            )
        else:
            data = parse_document(path, ctype, DocumentLimits.from_settings(self.ctx.settings))
            if item.transcript_source == "captions":
                data.source = "captions"  # the platform's own timed captions
            # a caption track's language was set when it was picked; a document's is the job's
            data.language = item.language or named
        if not data.segments and data.source == "asr":
            raise MediaError("no speech was found in the recording")
        data = in_script(data, job_chinese_script(job.request))
        s.add(
            Transcript(
                item_id=item.id,
                source=data.source,
                language=data.language,
                duration_s=data.duration_s,
                data=data.to_dict(),
                text=data.text,
            )
        )
        item.transcript_source = data.source
        item.duration_s = data.duration_s
        item.language = data.language
        item.language_probability = data.language_probability
        item.warnings = list(data.warnings) or None

    # -- speakers ---------------------------------------------------------------------
    def diarize(self, s: Session, item: Item, job: Job) -> None:
        """Label who speaks when in the stored transcript; done once per transcript."""
        wanted = job_diarize(job.request)
        row = s.get(Transcript, item.id)
        if wanted is None or row is None or row.data.get("speakers") is not None:
            return  # not asked for, or diarized already (a retry does not do it twice)
        data = TranscriptData.from_dict(row.data)
        path = Path(item.media_path) if item.media_path else None
        if data.source != "asr" or path is None or not path.is_file():
            why = (
                f"the transcript comes from {data.source}, not audio"
                if data.source != "asr"
                else "the recording is no longer available"
            )
            item.warnings = [*(item.warnings or []), f"speakers not labelled: {why}"]
            return
        audio = load_audio(path)
        found = self.ctx.providers.diarizer().diarize(
            audio,
            min_speakers=wanted.min_speakers,
            max_speakers=wanted.max_speakers,
            should_stop=self.ctx.stopping.is_set,
        )
        data = label_transcript(data, found)
        recognised = voices.recognise(s, job.user_id, data, self.ctx.settings.voice_match_threshold)
        if recognised:  # names the user gave this item win over the library's
            item.speaker_map = {**recognised, **(item.speaker_map or {})}
        row.data = data.to_dict()

    # -- chunk ------------------------------------------------------------------------
    def chunk(self, s: Session, item: Item, job: Job) -> None:
        """Cut the transcript into token-sized chunks with their time spans."""
        row = s.get(Transcript, item.id)
        if row is None:
            raise ItemError("transcript missing")
        embedder = self.ctx.providers.embedder(embedding_spec(job))
        spec = chunk_spec(job, embedder)
        chunks = chunk_transcript(
            TranscriptData.from_dict(row.data),
            spec,
            embedder.token_counter(),
            reserve=embedder.reserved_tokens,
        )
        s.execute(delete(Chunk).where(Chunk.item_id == item.id))
        rows = _chunk_rows(item.id, chunks, item.speaker_map)
        s.add_all(rows)
        if any(r.speakers for r in rows):
            s.flush()  # the rows' ids, for their speakers
            s.add_all(chunk_speaker_rows(rows, item.speaker_map))
        item.chunk_count = len(chunks)
        item.token_count = sum(c.token_count for c in chunks)
        if job.tokenizer != embedder.tokenizer_name:
            job.tokenizer = embedder.tokenizer_name

    # -- embed ------------------------------------------------------------------------
    def embed(self, s: Session, item: Item, job: Job) -> None:
        """Embed the chunks not embedded yet, committing batch by batch.

        With late chunking the item's chunks are embedded together, in order, in one
        ``embed_in_context`` call (each vector sees the whole transcript). With
        multi-vector output the per-token vectors are stored beside each chunk's vector.
        """
        self.embed_many(s, [item], job)

    def embed_many(self, s: Session, items: list[Item], job: Job) -> None:
        """Embed the chunks of ``items`` not embedded yet, in the model's batches across
        items (committing batch by batch when ``incremental``)."""
        embedder = self.ctx.providers.embedder(embedding_spec(job))
        missing: ColumnElement[bool] = Chunk.embedding.is_(None)
        if embedder.multi_vector:
            missing = or_(missing, Chunk.multi_embedding.is_(None))
        if embedder.late_chunking and embedder.supports_late_chunking:
            for item in items:
                self._embed_in_context(s, item, embedder, missing)
            return
        ids = [i.id for i in items]
        step = max(embedder.max_batch, 1) * 4
        while True:
            rows = s.execute(
                select(Chunk.id, Chunk.text)
                .where(Chunk.item_id.in_(ids), missing)
                .order_by(Chunk.item_id, Chunk.chunk_index)
                .limit(step)
            ).all()
            if not rows:
                return
            texts = [r.text for r in rows]
            _store_vectors(s, embedder, [r.id for r in rows], embedder.embed_batch(texts), texts)
            if self.incremental:
                s.commit()
            else:
                s.flush()

    def _embed_in_context(
        self, s: Session, item: Item, embedder: Embedder, missing: ColumnElement[bool]
    ) -> None:
        todo = set(s.scalars(select(Chunk.id).where(Chunk.item_id == item.id, missing)))
        if not todo:
            return  # every chunk is embedded: a retry does not pay for the model again
        rows = s.execute(
            select(Chunk.id, Chunk.text).where(Chunk.item_id == item.id).order_by(Chunk.chunk_index)
        ).all()
        vectors = embedder.embed_in_context([r.text for r in rows])
        keep = [n for n, r in enumerate(rows) if r.id in todo]
        _store_vectors(
            s, embedder, [rows[n].id for n in keep], vectors[keep], [rows[n].text for n in keep]
        )
        if self.incremental:
            s.commit()

    # -- index ------------------------------------------------------------------------
    def index(self, s: Session, item: Item, job: Job) -> None:
        """Upsert the item's vectors, drop chunks of an earlier, longer version, and add
        the chunks' terms to the lexical index (committed with the item's stage)."""
        self.index_many(s, [item], job)

    def index_many(self, s: Session, items: list[Item], job: Job) -> None:
        """Upsert the vectors of ``items`` in one call, then as :meth:`index` for each."""
        try:
            self._index_many(s, items, job)
        except Exception as exc:
            down = _vector_db_down(exc)
            if down is None:
                raise
            raise down from exc

    def _index_many(self, s: Session, items: list[Item], job: Job) -> None:
        store = self.ctx.providers.vector_store(job.vector_db)
        store.ensure_collection(job.collection, job.dimensions)
        rows = s.scalars(
            select(Chunk)
            .where(Chunk.item_id.in_([i.id for i in items]))
            .order_by(Chunk.item_id, Chunk.chunk_index)
        ).all()
        by_id = {i.id: i for i in items}
        records = chunk_records(self.ctx, job, [(by_id[c.item_id], c) for c in rows])
        owner = job_tenant(job.collection, job.user_id)
        store.upsert(job.collection, records, tenant=owner)
        kept = Counter(c.item_id for c in rows)
        # Stale vectors are those of an earlier, longer version of the same content, which
        # an earlier item indexed: content no other item holds has none to look for.
        seen = set(
            s.scalars(
                select(Item.content_id).where(
                    Item.content_id.in_([i.content_id for i in items]),
                    Item.id.not_in(list(by_id)),
                )
            )
        )
        for item in items:
            if item.content_id in seen:
                store.delete_stale(
                    job.collection, item.content_id, keep=kept[item.id], tenant=owner
                )
        lexical_index(s).add(s, job.user_id, [(c.id, c.text) for c in rows])


def _store_vectors(
    s: Session, embedder: Embedder, ids: list[int], vectors: Vectors, texts: list[str]
) -> None:
    """Write each chunk's vector, and its per-token vectors when the job asked for them."""
    multi = embedder.embed_multi_vector(texts) if embedder.multi_vector else None
    values: list[dict[str, object]] = []
    for n, (chunk_id, vec) in enumerate(zip(ids, vectors, strict=True)):
        row: dict[str, object] = {
            "id": chunk_id,
            "embedding": np.asarray(vec, dtype=np.float32).tobytes(),
        }
        if multi is not None:
            row["multi_embedding"] = np.asarray(multi[n], dtype=np.float32).tobytes()
        values.append(row)
    if values:
        s.execute(update(Chunk), values)  # one executemany, by primary key


def _chunk_rows(item_id: int, chunks: list[TextChunk], names: dict[str, str] | None) -> list[Chunk]:
    return [
        Chunk(
            item_id=item_id,
            chunk_index=c.index,
            text=c.text,
            start_s=c.start_s,
            end_s=c.end_s,
            token_count=c.token_count,
            speakers=c.speakers or None,
            speaker=display_name(c.speaker, names),
            confidence=c.confidence,
        )
        for c in chunks
    ]
