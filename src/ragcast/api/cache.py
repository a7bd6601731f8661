"""What an API process keeps of its reads: job statuses, ready to send, cleared by events.

A job's status answer (the JSON bytes of ``GET /job/{job_id}/status``) is kept for a
short time and dropped as soon as an event of that job is published: in this process
through :class:`InvalidatingBus`, from workers elsewhere through the Redis channels that
:func:`listen_redis` follows. A finished job's answer is kept ``ttl_s`` seconds, a
running job's at most :data:`RUNNING_TTL_S`, so a change that no event announced (a
coalesced progress step, a job deleted by another process) shows within that time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from ragcast.runner.events import Event, EventBus

log = logging.getLogger(__name__)

#: the longest a running job's status is kept: its events clear it sooner, but progress
#: events are coalesced (a few a second), so a change may come without one
RUNNING_TTL_S = 0.5
MAX_ENTRIES = 10_000


class StatusCache:
    """Status answers by ``(user_id, job_id)``, cleared by the job's events.

    A reader takes :meth:`version` before reading the store and passes it to :meth:`put`,
    which keeps nothing if an event of that job came in between: an answer read before
    a change is never kept after the change's event.
    """

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        #: False while the events of other processes cannot be followed: nothing is kept
        self.enabled = ttl_s > 0
        self._lock = threading.Lock()
        self._entries: dict[tuple[int, str], tuple[int, bytes, float]] = {}
        self._keys: dict[int, set[tuple[int, str]]] = {}
        self._version = 0
        #: job_pk -> the version at its last event (pruned; below ``_floor`` it is unknown)
        self._changed: dict[int, int] = {}
        self._floor = 0

    def get(self, user_id: int, job_id: str) -> bytes | None:
        """The kept answer, or None."""
        entry = self._entries.get((user_id, job_id))
        if entry is None:
            return None
        if time.monotonic() >= entry[2]:
            self._drop((user_id, job_id))
            return None
        return entry[1]

    def version(self) -> int:
        """The current version: take it before reading the store."""
        return self._version

    def put(
        self, user_id: int, job_id: str, job_pk: int, body: bytes, finished: bool, version: int
    ) -> None:
        """Keep ``body`` unless an event of ``job_pk`` came after ``version`` was taken."""
        if not self.enabled:
            return
        ttl = self.ttl_s if finished else min(self.ttl_s, RUNNING_TTL_S)
        key = (user_id, job_id)
        with self._lock:
            if version < self._floor or self._changed.get(job_pk, -1) >= version:
                return
            if len(self._entries) >= MAX_ENTRIES:
                self._drop_locked(next(iter(self._entries)))
            self._entries[key] = (job_pk, body, time.monotonic() + ttl)
            self._keys.setdefault(job_pk, set()).add(key)

    def invalidate(self, job_pk: int) -> None:
        """Forget the answers of job ``job_pk`` (it changed)."""
        with self._lock:
            self._version += 1
            self._changed[job_pk] = self._version
            if len(self._changed) > MAX_ENTRIES:
                # Forget the oldest changes; reads older than the newest forgotten are refused.
                oldest = sorted(self._changed.items(), key=lambda kv: kv[1])
                for pk, v in oldest[: len(oldest) // 2]:
                    del self._changed[pk]
                    self._floor = max(self._floor, v + 1)
            for key in self._keys.pop(job_pk, ()):
                self._entries.pop(key, None)

    def clear(self) -> None:
        """Forget everything (the events of other processes were not followed)."""
        with self._lock:
            self._version += 1
            self._floor = self._version + 1
            self._changed.clear()
            self._entries.clear()
            self._keys.clear()

    def _drop(self, key: tuple[int, str]) -> None:
        with self._lock:
            self._drop_locked(key)

    def _drop_locked(self, key: tuple[int, str]) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            keys = self._keys.get(entry[0])
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._keys[entry[0]]


class InvalidatingBus:
    """An event bus that also clears a :class:`StatusCache` for each event it publishes."""

    def __init__(self, inner: EventBus, cache: StatusCache) -> None:
        self.inner = inner
        self.cache = cache

    def publish(self, job_pk: int, event: Event) -> None:
        """Clear the job's kept status, then publish."""
        self.cache.invalidate(job_pk)
        self.inner.publish(job_pk, event)

    def subscribe(self, job_pk: int) -> Any:
        """The inner bus's subscription."""
        return self.inner.subscribe(job_pk)


async def listen_redis(
    url: str,
    prefix: str,
    cache: StatusCache,
    on_keys: Callable[[], None],
    ready: asyncio.Event | None = None,
) -> None:
    """Follow every job's event channel and the key channel of ``prefix`` until cancelled.

    Each job event clears that job's kept status; a key change calls ``on_keys``. While
    the subscription is down, the cache keeps nothing (and ``on_keys`` is called when
    it is back, for what was missed meanwhile).
    """
    import redis.asyncio as aioredis

    from ragcast.auth import KEYS_CHANNEL

    events = f"{prefix}:events:"
    keys = KEYS_CHANNEL.format(prefix=prefix)
    pause = 0.5
    while True:
        client: Any = aioredis.Redis.from_url(url)
        pubsub = client.pubsub()
        try:
            await pubsub.psubscribe(f"{events}*")
            await pubsub.subscribe(keys)
            on_keys()
            cache.clear()
            cache.enabled = cache.ttl_s > 0
            pause = 0.5
            if ready is not None:
                ready.set()
            async for message in pubsub.listen():
                _handle(message, events, keys, cache, on_keys)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a lost connection: keep nothing, retry
            cache.enabled = False
            cache.clear()
            log.warning("following job events over Redis failed (%s); retrying", exc)
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
                await client.aclose()
        await asyncio.sleep(pause)
        pause = min(pause * 2, 10.0)


def _handle(
    message: dict[str, Any],
    events: str,
    keys: str,
    cache: StatusCache,
    on_keys: Callable[[], None],
) -> None:
    """Act on one pub/sub message: a job event or a key change."""
    channel = message.get("channel")
    if isinstance(channel, bytes):
        channel = channel.decode()
    if not isinstance(channel, str) or message.get("type") not in ("message", "pmessage"):
        return
    if channel == keys:
        on_keys()
    elif channel.startswith(events) and channel[len(events) :].isdigit():
        cache.invalidate(int(channel[len(events) :]))
