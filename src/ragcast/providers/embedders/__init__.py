"""Embedding backends, chosen by the contract's ``embedding_model.id``."""
