"""Per-user rate limits with the contract's ``X-RateLimit-*`` headers.

A moving window per user and bucket: a request is allowed when fewer than ``N`` of the
user's requests in that bucket fell in the last period. In embedded mode the windows
live in this process's memory; with ``RAGCAST_REDIS_URL`` they live in Redis, so limits
hold across API processes. Either way a hit is one atomic step that counts the request
and reads the window's state: a lock held for a few operations in memory, one Lua script
(one round trip) in Redis. Counting is exact under concurrent requests.

Limits are written ``"N/period"`` (``"1000/hour"``, ``"20 per hour"``), as the ``limits``
package parses them.

A counted request can be given back (:meth:`RateLimiter.arefund`): a request refused for
an invalid body or path moves its hit from its route's bucket to ``read``
(:func:`ragcast.api.deps.forgive_invalid`), so a typo never costs one of the few
``process`` slots, yet invalid requests stay limited.

A refusal (:class:`RateLimitExceeded`) names its bucket, its limit and the setting that
raises it (``RAGCAST_RATE_LIMIT_<BUCKET>``). A limiter built with ``enabled=False``
(``RAGCAST_RATE_LIMITS=off``) counts nothing and refuses nothing; with
``exempt_admins=True`` (``RAGCAST_RATE_LIMIT_EXEMPT_ADMINS``) the requests of admin keys
are not counted. Either way the headers still report the bucket's limit, in full.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from limits import parse

from ragcast.errors import RateLimitError

BUCKETS = ("process", "export", "read", "write", "mcp", "ask")
#: the limit of a bucket the caller does not set (the settings' defaults)
DEFAULT_LIMITS = {
    "process": "20/hour",
    "export": "10/hour",
    "read": "1000/hour",
    "write": "300/hour",
    "mcp": "1000/hour",
    "ask": "100/hour",
}
#: what a bucket counts, as a refusal says it ("10 exports per hour")
NOUNS = {
    "process": "jobs started",
    "export": "exports",
    "read": "reads",
    "write": "writes",
    "mcp": "MCP requests",
    "ask": "answers",
}


def setting_of(bucket: str) -> str:
    """The environment variable that sets ``bucket``'s limit."""
    return f"RAGCAST_RATE_LIMIT_{bucket.upper()}"


class RateLimitExceeded(RateLimitError):
    """A refusal that says which bucket refused, its limit and the setting that raises it."""

    def __init__(
        self,
        bucket: str,
        window: _Window,
        retry_after: int,
        headers: dict[str, str],
    ) -> None:
        self.bucket = bucket
        self.limit = window.amount
        self.window_s = int(window.period)
        self.setting = setting_of(bucket)
        super().__init__(
            f"Too many requests: {self.limit} {NOUNS.get(bucket, 'requests')} "
            f"per {window.unit} ({self.setting}). Try again in {_human(retry_after)}.",
            retry_after,
            headers,
        )

    @property
    def details(self) -> dict[str, str | int]:
        """The 429 body's ``details``: ``bucket``, ``limit``, ``window_s``, ``setting``."""
        return {
            "bucket": self.bucket,
            "limit": self.limit,
            "window_s": self.window_s,
            "setting": self.setting,
        }


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

#: takes back one counted request (ARGV[2], the time :data:`_HIT` stored), then answers
#: ``{requests in the window, the oldest one's time, now}``
_REFUND = """
local key = KEYS[1]
local period = tonumber(ARGV[1])
redis.call('LREM', key, 1, ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local cutoff = now - period
while true do
  local last = redis.call('LINDEX', key, -1)
  if not last or tonumber(last) > cutoff then break end
  redis.call('RPOP', key)
end
local count = redis.call('LLEN', key)
local oldest = redis.call('LINDEX', key, -1) or string.format('%.6f', now)
return {count, oldest, string.format('%.6f', now)}
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
class Counted:
    """One counted request: where it was counted and what the headers report."""

    bucket: str
    user_id: int
    #: what the window stored for it (its time), so that it can be given back
    token: str
    state: RateState


@dataclass(frozen=True, slots=True)
class _Window:
    amount: int
    period: float
    #: the period in words: ``hour``, ``2 minutes``
    unit: str = "period"


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

    def refund(self, key: str, window: _Window, token: float) -> tuple[int, float, float]:
        """Take back the request counted at ``token``: (count, oldest time, now)."""
        now = time.time()
        cutoff = now - window.period
        with self._lock:
            times = self._times.get(key)
            if times is None:
                return 0, now, now
            with contextlib.suppress(ValueError):  # already expired: nothing to take back
                times.remove(token)
            while times and times[0] <= cutoff:
                times.popleft()
            return len(times), times[0] if times else now, now

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
        #: per event loop: (the loop, the hit script, the refund script)
        self._clients: dict[int, Any] = {}
        self._lock = threading.Lock()

    def key(self, bucket: str, user: str) -> str:
        return f"{self._prefix}:{bucket}:{user}"

    def _sync_client(self) -> Any:
        if self._sync is None:
            import redis

            self._sync = redis.Redis.from_url(self._url)
            self._sync_script = self._sync.register_script(_HIT)
        return self._sync

    def _async_scripts(self) -> tuple[Any, Any]:
        loop = asyncio.get_running_loop()
        with self._lock:
            found = self._clients.get(id(loop))
            if found is None or found[0] is not loop:
                import redis.asyncio as aioredis

                client = aioredis.Redis.from_url(self._url)
                scripts = (client.register_script(_HIT), client.register_script(_REFUND))
                found = self._clients[id(loop)] = (loop, *scripts)
        return found[1], found[2]

    @staticmethod
    def _answer(raw: list[Any]) -> tuple[bool, int, float, float]:
        allowed, count, oldest, now = raw
        return bool(int(allowed)), int(count), float(oldest), float(now)

    def hit(self, key: str, window: _Window) -> tuple[bool, int, float, float]:
        self._sync_client()
        return self._answer(self._sync_script(keys=[key], args=[window.amount, window.period]))

    async def ahit(self, key: str, window: _Window) -> tuple[tuple[bool, int, float, float], str]:
        """:meth:`hit` without blocking; also the time stored (what :meth:`arefund` takes)."""
        script, _ = self._async_scripts()
        raw = await script(keys=[key], args=[window.amount, window.period])
        stored = raw[3].decode() if isinstance(raw[3], bytes) else str(raw[3])
        return self._answer(raw), stored

    async def arefund(self, key: str, window: _Window, token: str) -> tuple[int, float, float]:
        _, script = self._async_scripts()
        count, oldest, now = await script(keys=[key], args=[window.period, token])
        return int(count), float(oldest), float(now)

    def reset(self) -> None:
        client = self._sync_client()
        keys = list(client.scan_iter(f"{self._prefix}:*"))
        if keys:
            client.delete(*keys)


class RateLimiter:
    """One moving window per user and bucket (see :data:`BUCKETS`).

    ``limits`` maps a bucket to its limit; a bucket it leaves out has its
    :data:`DEFAULT_LIMITS` entry. ``enabled=False`` counts and refuses nothing (a
    one-person server); ``exempt_admins`` leaves the requests of admin keys uncounted.
    """

    def __init__(
        self,
        limits: dict[str, str],
        storage_url: str | None = None,
        key_prefix: str = "ragcast",
        *,
        enabled: bool = True,
        exempt_admins: bool = False,
    ) -> None:
        self._windows: dict[str, _Window] = {}
        for bucket in BUCKETS:
            item = parse(limits.get(bucket) or DEFAULT_LIMITS[bucket])
            name = item.GRANULARITY.name
            unit = name if item.multiples == 1 else f"{item.multiples} {name}s"
            self._windows[bucket] = _Window(item.amount, float(item.get_expiry()), unit)
        self.enabled = enabled
        self.exempt_admins = exempt_admins
        self._redis = _RedisWindows(storage_url, f"{key_prefix}:ratelimit") if storage_url else None
        self._memory = _MemoryWindows()

    def _free(self, bucket: str, admin: bool) -> RateState | None:
        """The headers' state of a request not counted (limits off, an exempt admin)."""
        if self.enabled and not (admin and self.exempt_admins):
            return None
        window = self._windows[bucket]
        reset = int(math.ceil(time.time() + window.period))
        return RateState(limit=window.amount, remaining=window.amount, reset=reset)

    def hit(self, bucket: str, user_id: int, *, admin: bool = False) -> RateState:
        """Count one request; raises RateLimitExceeded (with the headers' state) when over."""
        if (free := self._free(bucket, admin)) is not None:
            return free
        window = self._windows[bucket]
        key = f"{bucket}:u{user_id}"
        if self._redis is not None:
            answer = self._redis.hit(self._redis.key(bucket, f"u{user_id}"), window)
        else:
            answer = self._memory.hit(key, window)
        return self._state(bucket, window, *answer)

    async def ahit(self, bucket: str, user_id: int, *, admin: bool = False) -> RateState:
        """:meth:`hit` for the event loop: in memory at once, in Redis without blocking."""
        return (await self.acount(bucket, user_id, admin=admin)).state

    async def acount(self, bucket: str, user_id: int, *, admin: bool = False) -> Counted:
        """:meth:`ahit`, answering what :meth:`arefund` needs to take the request back.

        A request not counted (limits off, an exempt admin) has an empty ``token``.
        """
        if (free := self._free(bucket, admin)) is not None:
            return Counted(bucket, user_id, "", free)
        window = self._windows[bucket]
        if self._redis is not None:
            answer, token = await self._redis.ahit(self._redis.key(bucket, f"u{user_id}"), window)
        else:
            answer = self._memory.hit(f"{bucket}:u{user_id}", window)
            token = repr(answer[3])
        return Counted(bucket, user_id, token, self._state(bucket, window, *answer))

    async def arefund(self, counted: Counted) -> RateState:
        """Take back a request :meth:`acount` counted; the bucket's state after it."""
        if not counted.token:  # never counted: nothing to give back
            return counted.state
        window = self._windows[counted.bucket]
        if self._redis is not None:
            key = self._redis.key(counted.bucket, f"u{counted.user_id}")
            count, oldest, _now = await self._redis.arefund(key, window, counted.token)
        else:
            key = f"{counted.bucket}:u{counted.user_id}"
            count, oldest, _now = self._memory.refund(key, window, float(counted.token))
        return RateState(
            limit=window.amount,
            remaining=max(window.amount - count, 0),
            reset=int(math.ceil(oldest + window.period)),
        )

    @staticmethod
    def _state(
        bucket: str, window: _Window, allowed: bool, count: int, oldest: float, now: float
    ) -> RateState:
        reset = int(math.ceil(oldest + window.period))
        state = RateState(limit=window.amount, remaining=max(window.amount - count, 0), reset=reset)
        if not allowed:
            retry_after = max(1, math.ceil(oldest + window.period - now))
            raise RateLimitExceeded(bucket, window, retry_after, state.headers())
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
