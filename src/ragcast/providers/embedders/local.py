"""Local sentence-transformers models (the packaged all-MiniLM-L6-v2 by default).

Late chunking is done here from the model's own token embeddings: the document (its
chunks in order) is tokenized once, the transformer runs over overlapping macro windows
of at most ``max_seq_length`` tokens, every token takes its embedding from the window
where it sits most centrally, and each chunk's vector is the mean of its tokens'
embeddings, passed through the modules after pooling (``Dense``, ``Normalize``) and
normalised. A job asks for it with ``"late_chunking": true`` in ``embedding_model``.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer

from ragcast.errors import ConfigurationError
from ragcast.providers.embedders.base import Embedder, EmbeddingSpec, Vectors
from ragcast.providers.embedders.late import owners, plan_windows
from ragcast.tokens import HFTokenCounter, TokenCounter


class LocalEmbedder(Embedder):
    """A sentence-transformers model on the CPU, normalised vectors, batched."""

    id = "local"
    reserved_tokens = 2  # [CLS] and [SEP]

    def __init__(
        self,
        model: str,
        *,
        batch_size: int = 32,
        device: str = "cpu",
        late_overlap: float = 0.25,
    ) -> None:
        self.model_name = model
        self.max_batch = batch_size
        self.device = device
        #: share of a macro window repeated in the next one (late chunking)
        self.late_overlap = late_overlap
        self._model: Any = None
        self._counter: TokenCounter | None = None
        self._doc_tokenizer: Tokenizer | None = None
        self._pool_index = -1
        self._lock = threading.Lock()
        self._load()

    def _load(self) -> Any:
        if self._model is None:
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # quiet logs

            try:
                model = SentenceTransformer(self.model_name, device=self.device)
            except Exception as exc:
                raise ConfigurationError(
                    f"cannot load local embedding model {self.model_name!r}: {exc}"
                ) from exc
            dims = model.get_embedding_dimension()
            if dims is None:
                raise ConfigurationError(f"model {self.model_name!r} reports no dimension")
            self.dimensions = int(dims)
            self.max_tokens = int(model.max_seq_length or 512)
            names = [type(m).__name__ for m in model]
            # Late chunking needs token embeddings from a transformer, pooled afterwards.
            if names and names[0] == "Transformer" and "Pooling" in names:
                self._pool_index = names.index("Pooling")
                self.supports_late_chunking = hasattr(model.tokenizer, "backend_tokenizer")
            self._model = model
        return self._model

    def bind(self, spec: EmbeddingSpec) -> Embedder:
        """A view that late-chunks when the job asked for ``"late_chunking": true``."""
        if spec.options.get("late_chunking") is True and not self.late_chunking:
            if self.supports_late_chunking:
                self._document_tokenizer()  # built once here, shared by every view
            self.token_counter()
            view = copy.copy(self)
            view.late_chunking = True
            return view
        return self

    @property
    def tokenizer_name(self) -> str:
        """The model's own tokenizer: its name, or the last two parts of its path."""
        path = Path(self.model_name)
        return f"{path.parent.name}/{path.name}" if path.is_dir() else self.model_name

    def embed_batch(self, texts: Sequence[str], *, query: bool = False) -> Vectors:
        """Embed ``texts``; the model is symmetric, so queries and passages are alike."""
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        with self._lock:  # torch on 2 cores: concurrent encodes only thrash
            out = self._load().encode(
                list(texts),
                batch_size=self.max_batch,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(out, dtype=np.float32)

    def token_counter(self) -> TokenCounter:
        """The model's own fast tokenizer."""
        if self._counter is None:
            path = Path(self.model_name)
            if (path / "tokenizer.json").is_file():
                self._counter = HFTokenCounter.from_path(path)
            else:
                # A copy: the counter turns truncation off, the model must keep it.
                backend = self._load().tokenizer.backend_tokenizer
                self._counter = HFTokenCounter(Tokenizer.from_str(backend.to_str()))
        return self._counter

    def embed_in_context(self, chunks: Sequence[str]) -> Vectors:
        """Late chunking: each chunk's vector pooled from token embeddings of its document."""
        if not chunks:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        if not self.supports_late_chunking:
            raise ConfigurationError(f"model {self.model_name!r} cannot do late chunking")
        tokenizer, prefix, suffix = self._document_tokenizer()
        encodings = tokenizer.encode_batch(list(chunks), add_special_tokens=False)
        ids = [i for e in encodings for i in e.ids]
        if not ids:
            return self.embed_batch(chunks)
        bounds = np.cumsum([0] + [len(e.ids) for e in encodings])
        width = max(1, self.max_tokens - len(prefix) - len(suffix))
        windows = plan_windows([1] * len(ids), width, int(width * self.late_overlap))
        owner = owners(windows, [1] * len(ids))
        with self._lock:
            tokens = self._token_embeddings(ids, windows, owner, prefix, suffix)
            pooled = np.stack(
                [
                    tokens[a:b].mean(axis=0) if b > a else np.zeros(tokens.shape[1], np.float32)
                    for a, b in zip(bounds[:-1], bounds[1:], strict=True)
                ]
            )
            out = self._after_pooling(pooled)
        empty = [n for n in range(len(chunks)) if bounds[n + 1] == bounds[n]]
        if empty:  # a chunk the tokenizer ignores entirely: embed it alone
            out[empty] = self.embed_batch([chunks[n] for n in empty])
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return np.asarray(out / np.maximum(norms, 1e-12), dtype=np.float32)

    def _document_tokenizer(self) -> tuple[Tokenizer, list[int], list[int]]:
        """A non-truncating copy of the fast tokenizer and the special ids around an input."""
        if self._doc_tokenizer is None:
            backend = self._load().tokenizer.backend_tokenizer
            tok = Tokenizer.from_str(backend.to_str())
            tok.no_truncation()
            tok.no_padding()
            self._doc_tokenizer = tok
        enc = self._doc_tokenizer.encode("x", add_special_tokens=True)
        content = [n for n, special in enumerate(enc.special_tokens_mask) if not special]
        first, last = (content[0], content[-1]) if content else (len(enc.ids), len(enc.ids) - 1)
        return self._doc_tokenizer, enc.ids[:first], enc.ids[last + 1 :]

    def _token_embeddings(
        self,
        ids: list[int],
        windows: list[tuple[int, int]],
        owner: list[int],
        prefix: list[int],
        suffix: list[int],
    ) -> Any:
        """(len(ids), hidden) token embeddings, each from the token's owning window."""
        import torch

        model = self._load()
        pad = model.tokenizer.pad_token_id or 0
        with_types = "token_type_ids" in getattr(model.tokenizer, "model_input_names", [])
        out: Any = None
        owner_arr = np.asarray(owner)
        for first in range(0, len(windows), max(1, self.max_batch)):
            batch = windows[first : first + max(1, self.max_batch)]
            rows = [prefix + ids[a:b] + suffix for a, b in batch]
            longest = max(len(r) for r in rows)
            input_ids = torch.full((len(rows), longest), pad, dtype=torch.long)
            mask = torch.zeros((len(rows), longest), dtype=torch.long)
            for n, row in enumerate(rows):
                input_ids[n, : len(row)] = torch.tensor(row, dtype=torch.long)
                mask[n, : len(row)] = 1
            features: dict[str, Any] = {"input_ids": input_ids, "attention_mask": mask}
            if with_types:
                features["token_type_ids"] = torch.zeros_like(input_ids)
            features = {k: v.to(self.device) for k, v in features.items()}
            with torch.inference_mode():
                for module in list(model)[: self._pool_index]:
                    features = module(features)
            hidden = features["token_embeddings"].float().cpu().numpy()
            if out is None:
                out = np.zeros((len(ids), hidden.shape[2]), dtype=np.float32)
            for n, (a, b) in enumerate(batch):
                mine = np.nonzero(owner_arr[a:b] == first + n)[0]
                out[a + mine] = hidden[n, len(prefix) + mine]
        return out

    def _after_pooling(self, pooled: Any) -> Any:
        """Run the modules after pooling (``Dense``, ``Normalize``…) on pooled vectors."""
        import torch

        model = self._load()
        features: dict[str, Any] = {
            "sentence_embedding": torch.from_numpy(np.ascontiguousarray(pooled)).to(self.device)
        }
        with torch.inference_mode():
            for module in list(model)[self._pool_index + 1 :]:
                features = module(features)
        return features["sentence_embedding"].float().cpu().numpy()
