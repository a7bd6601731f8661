"""The web dashboard: a single page served at ``/`` that drives the public API."""

from __future__ import annotations

from ragcast.web.routes import install

__all__ = ["install"]
