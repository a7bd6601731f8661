"""Per-user rate limits with the contract's ``X-RateLimit-*`` headers.

A moving window per user and bucket: a request is allowed when fewer than ``N`` of the
user's requests in that bucket fell in the last period. In embedded mode the windows
live in this process's memory; with ``RAGCAST_REDIS_URL`` they live in Redis, so limits
hold across API processes. Either way a hit is one atomic step that counts the request
and reads the window's state: a lock held for a few operations in memory, one Lua script
(one round trip) in Redis. Counting is exact under concurrent requests.

Limits are written ``"N/period"`` (``"1000/hour"``, ``"20 per hour"``), as the ``limits``
package parses them.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from limits import parse

from ragcast.errors import RateLimitError

BUCKETS = ("process", "export", "read")

#: drops the window's expired entries, then counts the request if there is room; answers
#: ``{allowed (0/1), requests in the window, the oldest one's time}`` (times as strings:
#: Redis turns Lua numbers into integers). The server's clock serves every API process.
_HIT = """
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local cutoff = now - period
while true do
  local last = redis.call('LINDEX', key, -1)
  if not last or tonumber(last) > cutoff then break end
  redis.call('RPOP', key)
end
local count = redis.call('LLEN', key)
local allowed = 0
if count < limit then
  redis.call('LPUSH', key, string.format('%.6f', now))
  count = count + 1
  allowed = 1
end
if count > 0 then
  redis.call('EXPIRE', key, math.ceil(period) + 1)
end
local oldest = redis.call('LINDEX', key, -1) or string.format('%.6f', now)
return {allowed, count, oldest, string.format('%.6f', now)}
"""


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


@dataclass(frozen=True, slots=True)
class _Window:
    amount: int
    period: float


class _MemoryWindows:
    """Moving windows in this process: the times of the requests of the last period."""

    #: windows are swept of idle users every this many hits
    SWEEP_EVERY = 10_000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._times: dict[str, deque[float]] = {}
        self._hits = 0

    def hit(self, key: str, window: _Window) -> tuple[bool, int, float, float]:
        """Count one request if there is room: (allowed, count, oldest time, now)."""
        now = time.time()
        cutoff = now - window.period
        with self._lock:
            times = self._times.get(key)
            if times is None:
                times = self._times[key] = deque()
            while times and times[0] <= cutoff:
                times.popleft()
            allowed = len(times) < window.amount
            if allowed:
                times.append(now)
            oldest = times[0] if times else now
            count = len(times)
            self._hits += 1
            if self._hits % self.SWEEP_EVERY == 0:
                self._sweep(now)
        return allowed, count, oldest, now

    def _sweep(self, now: float) -> None:
        """Forget users whose newest request is older than the longest period."""
        longest = 366 * 86400.0
        for key in [k for k, t in self._times.items() if not t or t[-1] <= now - longest]:
            del self._times[key]

    def reset(self) -> None:
        with self._lock:
            self._times.clear()


class _RedisWindows:
    """Moving windows in Redis lists (newest first), one Lua script per hit."""

    def __init__(self, url: str, prefix: str) -> None:
        self._url = url
        self._prefix = prefix
        self._sync: Any = None
        self._sync_script: Any = None
        self._clients: dict[int, Any] = {}  # one asyncio client per event loop
        self._lock = threading.Lock()

    def key(self, bucket: str, user: str) -> str:
        return f"{self._prefix}:{bucket}:{user}"

    def _sync_client(self) -> Any:
        if self._sync is None:
            import redis

            self._sync = redis.Redis.from_url(self._url)
            self._sync_script = self._sync.register_script(_HIT)
        return self._sync

    def _async_script(self) -> Any:
        loop = asyncio.get_running_loop()
        with self._lock:
            found = self._clients.get(id(loop))
            if found is None or found[0] is not loop:
                import redis.asyncio as aioredis

                client = aioredis.Redis.from_url(self._url)
                found = self._clients[id(loop)] = (loop, client.register_script(_HIT))
        return found[1]

    @staticmethod
    def _answer(raw: list[Any]) -> tuple[bool, int, float, float]:
        allowed, count, oldest, now = raw
        return bool(int(allowed)), int(count), float(oldest), float(now)

    def hit(self, key: str, window: _Window) -> tuple[bool, int, float, float]:
        self._sync_client()
        return self._answer(self._sync_script(keys=[key], args=[window.amount, window.period]))

    async def ahit(self, key: str, window: _Window) -> tuple[bool, int, float, float]:
        script = self._async_script()
        return self._answer(await script(keys=[key], args=[window.amount, window.period]))

    def reset(self) -> None:
        client = self._sync_client()
        keys = list(client.scan_iter(f"{self._prefix}:*"))
        if keys:
            client.delete(*keys)


class RateLimiter:
    """One moving window per user and bucket (``process``, ``export``, ``read``)."""

    def __init__(
        self, limits: dict[str, str], storage_url: str | None = None, key_prefix: str = "ragcast"
    ) -> None:
        self._windows: dict[str, _Window] = {}
        for bucket in BUCKETS:
            item = parse(limits[bucket])
            self._windows[bucket] = _Window(item.amount, float(item.get_expiry()))
        self._redis = _RedisWindows(storage_url, f"{key_prefix}:ratelimit") if storage_url else None
        self._memory = _MemoryWindows()

    def hit(self, bucket: str, user_id: int) -> RateState:
        """Count one request; raises RateLimitError (with the headers' state) when over."""
        window = self._windows[bucket]
        key = f"{bucket}:u{user_id}"
        if self._redis is not None:
            answer = self._redis.hit(self._redis.key(bucket, f"u{user_id}"), window)
        else:
            answer = self._memory.hit(key, window)
        return self._state(window, *answer)

    async def ahit(self, bucket: str, user_id: int) -> RateState:
        """:meth:`hit` for the event loop: in memory at once, in Redis without blocking."""
        window = self._windows[bucket]
        if self._redis is not None:
            answer = await self._redis.ahit(self._redis.key(bucket, f"u{user_id}"), window)
        else:
            answer = self._memory.hit(f"{bucket}:u{user_id}", window)
        return self._state(window, *answer)

    @staticmethod
    def _state(window: _Window, allowed: bool, count: int, oldest: float, now: float) -> RateState:
        reset = int(math.ceil(oldest + window.period))
        state = RateState(limit=window.amount, remaining=max(window.amount - count, 0), reset=reset)
        if not allowed:
            retry_after = max(1, math.ceil(oldest + window.period - now))
            raise RateLimitError(
                f"Too many requests. Please try again in {_human(retry_after)}.",
                retry_after,
                state.headers(),
            )
        return state

    def reset(self) -> None:
        """Forget every count (tests and admin use)."""
        if self._redis is not None:
            self._redis.reset()
        self._memory.reset()


def _human(seconds: int) -> str:
    if seconds >= 120:
        return f"{math.ceil(seconds / 60)} minutes"
    return f"{seconds} seconds"
