"""Assembling a process: the :class:`~ragcast.context.Context` of the app, a worker, the CLI."""

from __future__ import annotations

from ragcast.context import Context, EventBus, Metrics
from ragcast.providers.registry import Providers
from ragcast.runner.events import LocalEventBus
from ragcast.runner.metrics import LocalMetrics
from ragcast.settings import Settings
from ragcast.store.db import Database


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
