"""A LangChain retriever over a ragcast server's search (``POST /search``).

>>> from ragcast.integrations.langchain import RagcastRetriever
>>> retriever = RagcastRetriever(
...     base_url="http://localhost:8000", api_key="rc_...", top_k=4, language="en"
... )
>>> docs = retriever.invoke("who polished the lens")  # doctest: +SKIP
>>> docs[0].metadata["deep_link"]  # doctest: +SKIP

Each hit becomes a :class:`~langchain_core.documents.Document` whose ``page_content``
is the chunk's text and whose metadata says where it was said (``deep_link``,
``start_s``, ``end_s``; ``media_url``, a signed link to the recording a browser plays),
in what (``job_id``, ``content_id``, ``chunk_index``, ``title``, ``url``, ``source``), by
whom and in which language, how sure the recogniser was (``confidence``) and the hit's
``score`` (0-1, the same scale for any query: ``score_threshold`` drops weaker hits on
the server).
Needs ``langchain-core``: ``pip install 'ragcast[integrations]'``.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator

from ragcast.client import AsyncClient, Client
from ragcast.integrations import METADATA_KEYS

try:
    from langchain_core.callbacks import (
        AsyncCallbackManagerForRetrieverRun,
        CallbackManagerForRetrieverRun,
    )
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever
except ImportError as exc:
    raise ImportError(
        "ragcast.integrations.langchain needs langchain-core; "
        "install it with: pip install 'ragcast[integrations]'"
    ) from exc

__all__ = ["METADATA_KEYS", "RagcastRetriever", "hit_document"]


def hit_document(hit: dict[str, Any]) -> Document:
    """One search hit as a document: its text, with its place and score as metadata."""
    metadata = {key: hit.get(key) for key in METADATA_KEYS}
    doc_id = f"{hit.get('job_id')}:{hit.get('content_id')}:{hit.get('chunk_index')}"
    return Document(id=doc_id, page_content=str(hit.get("text") or ""), metadata=metadata)


class RagcastRetriever(BaseRetriever):
    """The best chunks of a ragcast server for a query, through the Python SDK.

    ``top_k`` and the filters are sent with every search (None: the server's default,
    no filter). Each call opens its own :class:`~ragcast.client.Client` (or, on the async
    path, :class:`~ragcast.client.AsyncClient`) and closes it, so the retriever holds no
    connection and can be copied, pickled and used from any event loop. SDK errors
    (``AuthError``, ``ValidationError``, ``ApiConnectionError``) are raised unchanged.
    """

    base_url: str = Field(description="The server, e.g. http://localhost:8000")
    api_key: SecretStr = Field(description="An API key of the server (rc_...)")
    top_k: int = Field(default=10, ge=1, le=100, description="How many chunks to return")
    mode: Literal["hybrid", "dense", "lexical"] | None = None
    job_id: str | None = None
    content_id: str | None = None
    platform: str | None = None
    language: str | None = None
    channel: str | None = None
    speaker: str | None = None
    uploaded_after: str | date | None = None
    uploaded_before: str | date | None = None
    rerank: bool | None = None
    score_threshold: float | None = Field(
        default=None, ge=0, le=1, description="Only hits scoring at least this (min_score)"
    )
    min_confidence: float | None = Field(
        default=None, ge=0, le=1, description="Only speech recognised at least this surely"
    )
    timeout: float = Field(default=60.0, gt=0, description="Seconds per request")
    max_retries: int = Field(default=3, ge=0, description="Retries of 429/5xx answers")

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        """Refuse a URL the SDK would refuse, at construction rather than first use."""
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, not {value!r}")
        return value.rstrip("/")

    def _search_options(self) -> dict[str, Any]:
        """The keyword arguments of ``Client.search`` besides the query."""
        return {
            "top_k": self.top_k,
            "job_id": self.job_id,
            "mode": self.mode,
            "content_id": self.content_id,
            "platform": self.platform,
            "language": self.language,
            "channel": self.channel,
            "speaker": self.speaker,
            "uploaded_after": self.uploaded_after,
            "uploaded_before": self.uploaded_before,
            "rerank": self.rerank,
            "min_score": self.score_threshold,
            "min_confidence": self.min_confidence,
        }

    def _client_options(self) -> dict[str, Any]:
        """The keyword arguments of the SDK clients besides the URL and key."""
        return {"timeout": self.timeout, "max_retries": self.max_retries}

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        """Search synchronously; the hits in the server's order, best first."""
        key = self.api_key.get_secret_value()
        with Client(self.base_url, key, **self._client_options()) as client:
            body = client.search(query, **self._search_options())
        return [hit_document(hit) for hit in body.get("results", [])]

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun
    ) -> list[Document]:
        """Search without blocking the event loop (:class:`AsyncClient`)."""
        key = self.api_key.get_secret_value()
        async with AsyncClient(self.base_url, key, **self._client_options()) as client:
            body = await client.search(query, **self._search_options())
        return [hit_document(hit) for hit in body.get("results", [])]
