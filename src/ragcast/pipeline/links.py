"""Deep links to a moment: defined with the retrieval records that carry them."""

from __future__ import annotations

from ragcast.retrieval.links import deep_link, twitch_time

__all__ = ["deep_link", "twitch_time"]
