"""ragcast: self-hosted audio-to-RAG: fetch, transcribe, chunk with timestamps, embed, index."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
