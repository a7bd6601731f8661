"""Per-user rate limits with the contract's ``X-RateLimit-*`` headers.

Backed by the ``limits`` package: in memory in embedded mode, Redis when
``RAGCAST_REDIS_URL`` is set (so limits hold across API processes). A hit is one
atomic moving-window acquire, so counting is exact under concurrent requests.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

from ragcast.errors import RateLimitError

BUCKETS = ("process", "export", "read")


@dataclass(frozen=True, slots=True)
class RateState:
    """What the headers report after a hit."""

    limit: int
    remaining: int
    reset: int

    def headers(self) -> dict[str, str]:
        """The three ``X-RateLimit-*`` headers."""
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset),
        }


class RateLimiter:
    """One moving window per user and bucket (``process``, ``export``, ``read``)."""

    def __init__(
        self, limits: dict[str, str], storage_url: str | None = None, key_prefix: str = "ragcast"
    ) -> None:
        self._items: dict[str, RateLimitItem] = {b: parse(limits[b]) for b in BUCKETS}
        self._storage: Any = (
            storage_from_string(storage_url, key_prefix=f"{key_prefix}:limits")
            if storage_url
            else MemoryStorage()
        )
        self._limiter = MovingWindowRateLimiter(self._storage)

    def hit(self, bucket: str, user_id: int) -> RateState:
        """Count one request; raises RateLimitError (with the headers' state) when over."""
        item = self._items[bucket]
        key = f"u{user_id}"
        allowed = self._limiter.hit(item, "ragcast", bucket, key)
        stats = self._limiter.get_window_stats(item, "ragcast", bucket, key)
        reset = int(math.ceil(stats.reset_time))
        state = RateState(limit=item.amount, remaining=max(stats.remaining, 0), reset=reset)
        if not allowed:
            retry_after = max(1, reset - int(time.time()))
            raise RateLimitError(
                f"Too many requests. Please try again in {_human(retry_after)}.",
                retry_after,
                state.headers(),
            )
        return state

    def reset(self) -> None:
        """Forget every count (tests and admin use)."""
        self._storage.reset()


def _human(seconds: int) -> str:
    if seconds >= 120:
        return f"{math.ceil(seconds / 60)} minutes"
    return f"{seconds} seconds"
