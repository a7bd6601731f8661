"""Progress events over Redis pub/sub: workers anywhere, subscribers on any API process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from ragcast.runner.events import Event

CHANNEL = "{prefix}:events:{job_pk}"

log = logging.getLogger(__name__)


class RedisEventBus:
    """Publishes with a shared sync client; each subscriber has its own async one."""

    def __init__(self, url: str, prefix: str = "ragcast") -> None:
        import redis

        self._url = url
        self._prefix = prefix
        self._redis: Any = redis.Redis.from_url(url)

    def publish(self, job_pk: int, event: Event) -> None:
        """Send ``event`` to the job's channel (in order, per publisher).

        Events are for followers; the store holds the truth. With Redis down an event is
        dropped (followers poll the status when their socket fails), never raised into
        the stage that has stored its result.
        """
        try:
            self._redis.publish(self._channel(job_pk), json.dumps(event))
        except Exception as exc:
            log.warning("event of job %s dropped: %s: %s", job_pk, type(exc).__name__, exc)

    def _channel(self, job_pk: int) -> str:
        return CHANNEL.format(prefix=self._prefix, job_pk=job_pk)

    @asynccontextmanager
    async def subscribe(self, job_pk: int) -> AsyncIterator[asyncio.Queue[Event]]:
        """Receive the job's events; the subscription is confirmed before this yields."""
        import redis.asyncio as aioredis

        client: Any = aioredis.Redis.from_url(self._url)
        pubsub = client.pubsub()
        queue: asyncio.Queue[Event] = asyncio.Queue()
        await pubsub.subscribe(self._channel(job_pk))
        # The confirmation: from here on no published event can be missed.
        for _ in range(3):
            if await pubsub.get_message(timeout=5.0) is not None:
                break

        async def pump() -> None:
            async for message in pubsub.listen():
                if message.get("type") == "message":
                    queue.put_nowait(json.loads(message["data"]))

        task = asyncio.create_task(pump())
        try:
            yield queue
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            await pubsub.aclose()
            await client.aclose()
