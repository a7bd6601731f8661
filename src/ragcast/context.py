"""What every part of one ragcast process shares: settings, store, backends, events.

The :class:`Context` is typed by what its users need (the protocols below) and assembled
at the top, by :func:`ragcast.runner.boot.build_context` at app, worker and CLI start-up,
so the parts that receive it never import the modules that build it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Protocol

from ragcast.providers.registry import Providers
from ragcast.settings import Settings
from ragcast.store.db import Database

Event = dict[str, Any]


class EventBus(Protocol):
    """Publish/subscribe of job events, keyed by the job's internal id."""

    def publish(self, job_pk: int, event: Event) -> None:
        """Send ``event`` to every subscriber of ``job_pk``."""

    def subscribe(self, job_pk: int) -> Any:
        """An async context manager yielding an ``asyncio.Queue`` of events."""


class Metrics(Protocol):
    """Where workers record what each stage took."""

    def observe_stage(self, stage: str, seconds: float, *, ok: bool, runs: int = 1) -> None:
        """Record ``runs`` item runs of ``stage`` that took ``seconds`` together."""

    def stage_totals(self) -> dict[str, dict[str, float]]:
        """Per stage: ``count``, ``failed`` and ``seconds`` (the sum)."""


@dataclass
class Context:
    """The services of one process; built once by ``build_context`` at start-up."""

    settings: Settings
    db: Database
    providers: Providers
    bus: EventBus
    metrics: Metrics
    #: set when the process shuts down: work stops at the next safe point
    stopping: threading.Event = field(default_factory=threading.Event)
