"""Retrieval: hybrid search over a user's chunks.

- :mod:`~ragcast.retrieval.tokenize`: terms in every language (CJK as bigrams)
- :mod:`~ragcast.retrieval.lexical`: the lexical index (SQLite FTS5, PostgreSQL)
- :mod:`~ragcast.retrieval.fusion`: lexical and dense rankings into one
- :mod:`~ragcast.retrieval.rerank`: an optional second-stage reranker
- :mod:`~ragcast.retrieval.filters`: what a search is restricted to
- :mod:`~ragcast.retrieval.layout`: one collection per model, users as tenants
- :mod:`~ragcast.retrieval.search`: the search itself
"""
