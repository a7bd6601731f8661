"""Counting tokens as an embedding model's tokenizer sees them (chunking and embedders)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from tokenizers import Tokenizer

from ragcast.errors import ConfigurationError


class TokenCounter(Protocol):
    """Counts tokens of texts as the embedding model's tokenizer sees them."""

    def count(self, texts: Sequence[str]) -> list[int]:
        """Tokens per text, without special tokens such as [CLS]/[SEP]."""
        ...


class HFTokenCounter:
    """A :class:`TokenCounter` over a HuggingFace fast tokenizer.

    The tokenizer's truncation and padding are switched off (on the object given), since
    a sentence-transformers ``tokenizer.json`` usually truncates to the model's maximum
    and would hide exactly the overflow we count for.
    """

    def __init__(self, tokenizer: Tokenizer) -> None:
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self._tokenizer = tokenizer

    @classmethod
    def from_path(cls, model_dir: str | Path) -> HFTokenCounter:
        """Load ``tokenizer.json`` from a model folder (or that file itself)."""
        path = Path(model_dir)
        file = path / "tokenizer.json" if path.is_dir() else path
        if not file.is_file():
            raise ConfigurationError(f"no tokenizer.json found at {path}")
        return cls(Tokenizer.from_file(str(file)))

    def count(self, texts: Sequence[str]) -> list[int]:
        """Tokens per text, without special tokens."""
        if not texts:
            return []
        encodings = self._tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [len(e.ids) for e in encodings]
