"""What every part of one ragcast process shares: settings, store, backends, events."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from ragcast.providers.registry import Providers
from ragcast.runner.events import EventBus, LocalEventBus
from ragcast.runner.metrics import LocalMetrics, Metrics
from ragcast.settings import Settings
from ragcast.store.db import Database


@dataclass
class Context:
    """The services of one process; built once by :func:`build_context`."""

    settings: Settings
    db: Database
    providers: Providers
    bus: EventBus
    metrics: Metrics = field(default_factory=LocalMetrics)
    #: set when the process shuts down: work stops at the next safe point
    stopping: threading.Event = field(default_factory=threading.Event)


def build_context(settings: Settings, *, migrate: bool = True) -> Context:
    """Create the data dir, open (and migrate) the store, and set up the backends.

    With ``RAGCAST_REDIS_URL`` the events and stage metrics go through Redis, so API
    processes and workers on other machines share them.
    """
    settings.ensure_dirs()
    db = Database(settings.resolved_database_url)
    if migrate:
        db.migrate()
    bus: EventBus
    metrics: Metrics
    if settings.redis_url:
        from ragcast.runner.metrics import RedisMetrics
        from ragcast.runner.redis_events import RedisEventBus

        prefix = settings.redis_key_prefix
        bus = RedisEventBus(settings.redis_url, prefix)
        metrics = RedisMetrics(settings.redis_url, prefix)
    else:
        bus, metrics = LocalEventBus(), LocalMetrics()
    return Context(
        settings=settings, db=db, providers=Providers(settings), bus=bus, metrics=metrics
    )
