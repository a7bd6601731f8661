"""Adapters of ragcast search to other frameworks (LangChain, LlamaIndex, MCP)."""

#: the fields of a search hit each retriever copies into its documents' metadata
METADATA_KEYS = (
    "deep_link",
    "media_url",
    "start_s",
    "end_s",
    "job_id",
    "content_id",
    "chunk_index",
    "title",
    "url",
    "source",
    "platform",
    "channel",
    "speaker",
    "language",
    "confidence",
    "score",
)
