"""A LlamaIndex retriever over a ragcast server's search (``POST /search``).

>>> from ragcast.integrations.llamaindex import RagcastRetriever
>>> retriever = RagcastRetriever("http://localhost:8000", "rc_...", top_k=4, language="en")
>>> nodes = retriever.retrieve("who polished the lens")  # doctest: +SKIP
>>> nodes[0].score, nodes[0].node.metadata["deep_link"]  # doctest: +SKIP

Each hit becomes a :class:`~llama_index.core.schema.NodeWithScore` holding a
:class:`~llama_index.core.schema.TextNode` (the chunk's text; metadata ``deep_link``,
``media_url``, ``start_s``, ``end_s``, ``job_id``, ``content_id``, ``chunk_index``,
``title``, ``url``, ``source``, ``speaker``, ``language``, ``confidence``, ``score``) and
the hit's score (0-1, the same scale for any query; ``min_score`` drops weaker hits on
the server).
Needs ``llama-index-core``: ``pip install 'ragcast[integrations]'``.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from ragcast.client import AsyncClient, Client
from ragcast.integrations import METADATA_KEYS

try:
    from llama_index.core.base.base_retriever import BaseRetriever
    from llama_index.core.callbacks import CallbackManager
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
except ImportError as exc:
    raise ImportError(
        "ragcast.integrations.llamaindex needs llama-index-core; "
        "install it with: pip install 'ragcast[integrations]'"
    ) from exc

__all__ = ["METADATA_KEYS", "RagcastRetriever", "hit_node"]

#: metadata that means nothing to a language model (kept out of the prompt text), and
#: the recording's signed link (an upload's ``deep_link`` carries it already)
_NOT_FOR_LLM = ["job_id", "content_id", "chunk_index", "source", "platform", "score", "media_url"]

Mode = Literal["hybrid", "dense", "lexical"]


def hit_node(hit: dict[str, Any]) -> NodeWithScore:
    """One search hit as a scored text node, its place and score in the metadata."""
    metadata = {key: hit.get(key) for key in METADATA_KEYS}
    node = TextNode(
        id_=f"{hit.get('job_id')}:{hit.get('content_id')}:{hit.get('chunk_index')}",
        text=str(hit.get("text") or ""),
        metadata=metadata,
        excluded_llm_metadata_keys=list(_NOT_FOR_LLM),
        excluded_embed_metadata_keys=list(METADATA_KEYS),
    )
    score = hit.get("score")
    return NodeWithScore(node=node, score=None if score is None else float(score))


class RagcastRetriever(BaseRetriever):
    """The best chunks of a ragcast server for a query, through the Python SDK.

    ``top_k`` and the filters are sent with every search (None: the server's default,
    no filter). Each call opens its own :class:`~ragcast.client.Client` (or, for
    :meth:`aretrieve`, :class:`~ragcast.client.AsyncClient`) and closes it, so the
    retriever holds no connection. SDK errors (``AuthError``, ``ValidationError``,
    ``ApiConnectionError``) are raised unchanged.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        top_k: int = 10,
        *,
        mode: Mode | None = None,
        job_id: str | None = None,
        content_id: str | None = None,
        platform: str | None = None,
        language: str | None = None,
        channel: str | None = None,
        speaker: str | None = None,
        uploaded_after: str | date | None = None,
        uploaded_before: str | date | None = None,
        rerank: bool | None = None,
        min_score: float | None = None,
        min_confidence: float | None = None,
        timeout: float = 60.0,
        max_retries: int = 3,
        callback_manager: CallbackManager | None = None,
        verbose: bool = False,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, not {base_url!r}")
        if not 1 <= top_k <= 100:
            raise ValueError(f"top_k must be between 1 and 100, not {top_k}")
        for name, value in (("min_score", min_score), ("min_confidence", min_confidence)):
            if value is not None and not 0 <= value <= 1:
                raise ValueError(f"{name} must be between 0 and 1, not {value}")
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.top_k = top_k
        self.filters: dict[str, Any] = {
            "mode": mode,
            "job_id": job_id,
            "content_id": content_id,
            "platform": platform,
            "language": language,
            "channel": channel,
            "speaker": speaker,
            "uploaded_after": uploaded_after,
            "uploaded_before": uploaded_before,
            "rerank": rerank,
            "min_score": min_score,
            "min_confidence": min_confidence,
        }
        self._client_options: dict[str, Any] = {"timeout": timeout, "max_retries": max_retries}
        super().__init__(callback_manager=callback_manager, verbose=verbose)

    def __repr__(self) -> str:
        """The server and ``top_k``, never the key."""
        return f"RagcastRetriever(base_url={self.base_url!r}, top_k={self.top_k})"

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        """Search synchronously; the hits in the server's order, best first."""
        with Client(self.base_url, self._api_key, **self._client_options) as client:
            body = client.search(query_bundle.query_str, top_k=self.top_k, **self.filters)
        return [hit_node(hit) for hit in body.get("results", [])]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        """Search without blocking the event loop (:class:`AsyncClient`)."""
        async with AsyncClient(self.base_url, self._api_key, **self._client_options) as client:
            body = await client.search(query_bundle.query_str, top_k=self.top_k, **self.filters)
        return [hit_node(hit) for hit in body.get("results", [])]
