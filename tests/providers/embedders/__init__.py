"""Embedding backends, tested against local servers speaking the providers' HTTP APIs."""
