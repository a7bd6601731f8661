"""ragcast: self-hosted audio-to-RAG: fetch, transcribe, chunk with timestamps, embed, index."""

from __future__ import annotations

import os

# torch (embeddings) and CTranslate2 (speech-to-text) share the cores. With OpenMP's
# default active wait, torch's idle threads spin after each batch and slow the next
# transcription by up to 2x; passive waiting costs nothing measurable. Must be set
# before either library loads, so it lives here; an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

__all__ = ["__version__"]
