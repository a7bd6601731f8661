"""The pipeline's data types, defined below it in :mod:`ragcast.types` (providers read them too)."""

from __future__ import annotations

from ragcast.types import ChunkSpec, Segment, TextChunk, Transcript, Word

__all__ = ["ChunkSpec", "Segment", "TextChunk", "Transcript", "Word"]
