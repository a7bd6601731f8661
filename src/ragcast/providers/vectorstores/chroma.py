"""Chroma: persistent on disk (the default) or a Chroma server by URL."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from ragcast.errors import ValidationError
from ragcast.providers.vectorstores.base import VectorHit, VectorRecord, VectorStore


class ChromaStore(VectorStore):
    """Chroma collections with cosine space; dimensions are recorded in their metadata."""

    id = "chroma"

    def __init__(self, *, path: Path | None = None, url: str | None = None) -> None:
        import chromadb
        from chromadb.config import Settings

        settings = Settings(anonymized_telemetry=False, allow_reset=False)
        if url:
            parsed = urlparse(url)
            self._client: Any = chromadb.HttpClient(
                host=parsed.hostname or "localhost",
                port=parsed.port or 8000,
                ssl=parsed.scheme == "https",
                settings=settings,
            )
        else:
            assert path is not None
            path.mkdir(parents=True, exist_ok=True)
            self._client = chromadb.PersistentClient(path=str(path), settings=settings)
        # On disk, Chroma's own cap per call (5461 on SQLite): fewer, larger calls write
        # faster. Over HTTP, 1000 keeps each request body to a few MB.
        cap = int(self._client.get_max_batch_size())
        self.max_batch = min(1000, cap) if url else cap
        self._collections: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _get(self, name: str) -> Any:
        col = self._collections.get(name)
        if col is None:
            col = self._client.get_collection(name, embedding_function=None)
            self._collections[name] = col
        return col

    def ensure_collection(self, name: str, dimensions: int) -> None:
        """Create or check ``name``."""
        with self._lock:
            col = self._client.get_or_create_collection(
                name,
                metadata={"hnsw:space": "cosine", "dimensions": dimensions},
                embedding_function=None,
            )
            existing = (col.metadata or {}).get("dimensions")
            if existing is not None and int(existing) != dimensions:
                raise ValidationError(
                    "embedding_model.dimensions",
                    f"collection {name} holds {existing}-dimensional vectors, not {dimensions}",
                )
            self._collections[name] = col

    def upsert_batch(self, name: str, records: Sequence[VectorRecord]) -> None:
        """Upsert one batch."""
        if not records:
            return
        self._get(name).upsert(
            ids=[r.id for r in records],
            embeddings=np.stack([np.asarray(r.vector, dtype=np.float32) for r in records]),
            documents=[r.text for r in records],
            metadatas=[_clean(r.metadata) for r in records],
        )

    def delete_stale(self, name: str, content_id: str, keep: int) -> None:
        """Delete chunks of ``content_id`` with ``chunk_index >= keep``."""
        self._get(name).delete(
            where={"$and": [{"content_id": content_id}, {"chunk_index": {"$gte": keep}}]}
        )

    def query(
        self, name: str, vector: Sequence[float], top_k: int, where: dict[str, Any] | None = None
    ) -> list[VectorHit]:
        """Nearest neighbours by cosine distance."""
        try:
            col = self._get(name)
        except Exception:  # chroma raises NotFoundError/ValueError by version
            return []
        res = col.query(
            query_embeddings=[list(map(float, vector))],
            n_results=top_k,
            where=_where(where),
            include=["documents", "metadatas", "distances"],
        )
        hits = []
        for id_, doc, meta, dist in zip(
            res["ids"][0],
            res["documents"][0],
            res["metadatas"][0],
            res["distances"][0],
            strict=True,
        ):
            hits.append(
                VectorHit(
                    id=id_, score=1.0 - float(dist), text=doc or "", metadata=dict(meta or {})
                )
            )
        return hits

    def count(self, name: str) -> int:
        """Number of vectors in ``name``."""
        try:
            return int(self._get(name).count())
        except Exception:
            return 0


def _clean(meta: dict[str, Any]) -> dict[str, Any]:
    # Chroma rejects None values in metadata.
    return {k: v for k, v in meta.items() if v is not None}


def _where(where: dict[str, Any] | None) -> dict[str, Any] | None:
    if not where:
        return None
    clauses = [{k: v} for k, v in where.items()]
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}
