"""Stage durations and outcomes, summed per stage: in memory, or in Redis across processes."""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from typing import Any

from ragcast.context import Metrics

log = logging.getLogger(__name__)


__all__ = ["LocalMetrics", "Metrics", "RedisMetrics"]


class LocalMetrics:
    """Metrics of this process only (embedded mode)."""

    def __init__(self) -> None:
        self._totals: dict[str, dict[str, float]] = defaultdict(
            lambda: {"count": 0.0, "failed": 0.0, "seconds": 0.0}
        )
        self._lock = threading.Lock()

    def observe_stage(self, stage: str, seconds: float, *, ok: bool, runs: int = 1) -> None:
        """Add ``runs`` runs to the totals."""
        with self._lock:
            row = self._totals[stage]
            row["count"] += runs
            row["failed"] += 0 if ok else runs
            row["seconds"] += seconds

    def stage_totals(self) -> dict[str, dict[str, float]]:
        """A copy of the totals."""
        with self._lock:
            return {k: dict(v) for k, v in self._totals.items()}


class RedisMetrics:
    """Totals in one Redis hash, so every worker adds to the same figures."""

    def __init__(self, url: str, prefix: str = "ragcast") -> None:
        import redis

        self._redis: Any = redis.Redis.from_url(url)
        self.key = f"{prefix}:metrics:stages"

    def observe_stage(self, stage: str, seconds: float, *, ok: bool, runs: int = 1) -> None:
        """Add ``runs`` runs to the shared totals."""
        pipe = self._redis.pipeline()
        pipe.hincrbyfloat(self.key, f"{stage}:count", runs)
        pipe.hincrbyfloat(self.key, f"{stage}:failed", 0 if ok else runs)
        pipe.hincrbyfloat(self.key, f"{stage}:seconds", seconds)
        try:
            pipe.execute()
        except Exception as exc:  # Redis is down: the stage's result is stored all the same
            log.warning("stage metrics not recorded: %s: %s", type(exc).__name__, exc)

    def stage_totals(self) -> dict[str, dict[str, float]]:
        """The shared totals."""
        out: dict[str, dict[str, float]] = defaultdict(dict)
        for key, value in self._redis.hgetall(self.key).items():
            stage, _, name = key.decode().rpartition(":")
            out[stage][name] = float(value)
        return dict(out)
