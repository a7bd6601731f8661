"""Adapters of ragcast search to other frameworks (LangChain, LlamaIndex, MCP)."""
