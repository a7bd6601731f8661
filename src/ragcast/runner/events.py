"""Progress events: published by workers, followed by WebSocket subscribers.

The in-process bus hands each event to every subscriber's asyncio queue through
``call_soon_threadsafe``, because publishers are Dramatiq worker threads and
subscribers live on the server's event loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ragcast.context import Event, EventBus

__all__ = ["Event", "EventBus", "LocalEventBus"]


class LocalEventBus:
    """The embedded bus: subscribers in this process only."""

    def __init__(self) -> None:
        self._subs: dict[int, set[tuple[asyncio.AbstractEventLoop, asyncio.Queue[Event]]]] = (
            defaultdict(set)
        )
        self._lock = threading.Lock()

    def publish(self, job_pk: int, event: Event) -> None:
        """Deliver ``event``; a closed loop (a finished subscriber) is skipped."""
        with self._lock:
            subs = list(self._subs.get(job_pk, ()))
        for loop, queue in subs:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, event)
            except RuntimeError:
                pass

    @asynccontextmanager
    async def subscribe(self, job_pk: int) -> AsyncIterator[asyncio.Queue[Event]]:
        """Receive the events of ``job_pk`` while the block runs."""
        queue: asyncio.Queue[Event] = asyncio.Queue()
        entry = (asyncio.get_running_loop(), queue)
        with self._lock:
            self._subs[job_pk].add(entry)
        try:
            yield queue
        finally:
            with self._lock:
                self._subs[job_pk].discard(entry)
                if not self._subs[job_pk]:
                    del self._subs[job_pk]
