"""Rate limits: one moving window per user and bucket, exact under concurrent requests,
in memory and in Redis (one script per request), with the contract's headers."""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from ragcast.api.ratelimit import RateLimiter
from ragcast.errors import RateLimitError

REDIS_URL = os.environ.get("RAGCAST_TEST_REDIS", "redis://127.0.0.1:6379/0")
LIMITS = {"process": "3/hour", "export": "10/hour", "read": "25/minute"}


def _outcomes(limiters: list[RateLimiter], hits: int) -> list[int | None]:
    """Remaining counts of ``hits`` concurrent reads of user 7 (None: refused)."""

    def one(n: int) -> int | None:
        try:
            return limiters[n % len(limiters)].hit("read", 7).remaining
        except RateLimitError as exc:
            assert exc.headers["X-RateLimit-Remaining"] == "0"
            assert 0 < exc.retry_after <= 60
            return None

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(hits)))


def test_memory_windows_are_exact_under_concurrency() -> None:
    limiter = RateLimiter(LIMITS)
    outcomes = _outcomes([limiter], 40)
    assert outcomes.count(None) == 15
    assert sorted(r for r in outcomes if r is not None) == list(range(25))
    state = limiter.hit("process", 7)
    assert state.limit == 3 and state.remaining == 2
    assert time.time() + 3590 < state.reset <= time.time() + 3601
    assert limiter.hit("read", 8).remaining == 24  # another user's window


@pytest.mark.service
def test_redis_windows_are_shared_and_exact_across_limiters() -> None:
    prefix = f"ragcast-test-{secrets.token_hex(4)}"
    limiters = [RateLimiter(LIMITS, REDIS_URL, prefix) for _ in range(3)]
    try:
        outcomes = _outcomes(limiters, 40)
        assert outcomes.count(None) == 15
        assert sorted(r for r in outcomes if r is not None) == list(range(25))

        async def counted() -> int:
            state = await limiters[0].ahit("process", 7)
            return state.remaining

        assert asyncio.run(counted()) == 2
        assert limiters[1].hit("process", 7).remaining == 1
    finally:
        limiters[0].reset()
    assert limiters[2].hit("read", 7).remaining == 24  # reset forgot every count
    limiters[0].reset()
