"""Real services a fault test can kill and bring back: its own Redis, PostgreSQL (the
``pgserver`` wheel's server, run as its dedicated ``pgserver`` user when the tests run as
root), Chroma server, a small tmpfs, and a Jina-speaking provider that answers 503 for a
while; and the ragcast processes on top of them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from ragcast.auth import create_key
from ragcast.runner.boot import build_context
from ragcast.settings import Settings
from tests.distributed.cluster import BIN, PREFIX, Proc, free_port, wait_http
from tests.providers.embedders.fake_http import Answer, Recorded
from tests.providers.embedders.fake_jina import FakeJina


def wait_port(port: int, timeout: float = 30) -> None:
    """Wait until something accepts connections on ``port``."""
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


class Redis:
    """``redis-server`` without persistence: killed, it comes back empty."""

    def __init__(self, root: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = Proc(
            "redis",
            [
                shutil.which("redis-server") or "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(root),
            ],
            dict(os.environ),
            root / "redis.log",
        )
        self.start()

    def start(self) -> None:
        self.proc.start()
        wait_port(self.port)

    def kill(self) -> None:
        self.proc.kill()


class Postgres:
    """A PostgreSQL of its own (``pgserver``), reached over its Unix socket."""

    def __init__(self, root: Path) -> None:
        with warnings.catch_warnings():  # no XDG_RUNTIME_DIR here: platformdirs warns
            warnings.simplefilter("ignore")
            import pgserver

        # Outside pytest's folders, which are root's alone: the server's own user needs in.
        self.home = Path(tempfile.mkdtemp(prefix="ragcast-pg-"))
        self.home.chmod(0o755)
        self.pgdata = self.home / "pg"
        self.server = pgserver.get_server(self.pgdata, cleanup_mode="stop")
        info = self.server.get_postmaster_info()
        self.url = f"postgresql://postgres@/postgres?host={info.socket_dir}"

    def _ctl(self, *args: str) -> None:
        from pgserver._commands import pg_ctl

        pg_ctl(["-w", *args], pgdata=self.pgdata, user=self.server.system_user, timeout=60)

    def stop_immediate(self) -> None:
        """``pg_ctl stop -m immediate``: no shutdown checkpoint, crash recovery at start."""
        self._ctl("-m", "immediate", "stop")

    def start(self) -> None:
        self.server.ensure_postgres_running()

    def close(self) -> None:
        try:
            self._ctl("-m", "fast", "stop")
        except Exception:
            pass
        shutil.rmtree(self.home, ignore_errors=True)


class Chroma:
    """A ``chroma run`` server on its own port and folder."""

    def __init__(self, root: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [str(BIN / "chroma"), "run", "--path", str(root / "chroma"), "--port", str(self.port)]
        self.proc = Proc("chroma", cmd, dict(os.environ), root / "chroma.log")
        self.start()

    def start(self) -> None:
        self.proc.start()
        wait_http(f"{self.url}/api/v2/heartbeat")

    def kill(self) -> None:
        self.proc.kill()


class Tmpfs:
    """A small tmpfs (root only) that a test fills and frees."""

    def __init__(self, path: Path, size_mb: int) -> None:
        path.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(path)],
            check=True,
            capture_output=True,
        )
        self.path = path
        self.filler = path / "filler.bin"

    def fill(self) -> None:
        """Write until the disk is full (not a byte left)."""
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for size in (1 << 20, 4096, 1):
                block = b"\0" * size
                try:
                    while True:
                        os.write(fd, block)
                except OSError:
                    pass
        finally:
            os.close(fd)

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)

    def close(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], check=False, capture_output=True)


def tmpfs_or_skip(path: Path, size_mb: int) -> Tmpfs:
    """A tmpfs at ``path``; the test is skipped where mounting is not allowed."""
    import pytest

    try:
        return Tmpfs(path, size_mb)
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {exc}")


class FlakyJina(FakeJina):
    """Jina's embeddings API that answers 503 for ``seconds`` from the first embedding
    request after :meth:`outage`, then recovers."""

    def __init__(self) -> None:
        self.outage_s = 0.0
        self.down_from: float | None = None
        self.refused = 0
        super().__init__()

    def outage(self, seconds: float) -> None:
        self.outage_s, self.down_from = seconds, None

    @property
    def down_until(self) -> float:
        """When the outage ends (monotonic), once it has begun."""
        return (self.down_from or time.monotonic()) + self.outage_s

    def answer(self, rec: Recorded) -> Answer:
        if rec.path == "/v1/embeddings" and self.outage_s:
            if self.down_from is None:
                self.down_from = time.monotonic()
            if time.monotonic() < self.down_until:
                self.refused += 1
                return 503, {"detail": "Service temporarily unavailable"}
        return super().answer(rec)


@dataclass
class Ragcast:
    """ragcast processes on the services a test gives them."""

    root: Path
    settings: dict[str, Any]
    env_extra: dict[str, str] = field(default_factory=dict)
    procs: list[Proc] = field(default_factory=list)
    port: int = 0
    key: str = ""

    def __post_init__(self) -> None:
        ctx = build_context(Settings(**self.settings))
        with ctx.db.session() as s:
            self.key, _ = create_key(s, "fault-user")
        ctx.db.dispose()

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAGCAST_")}
        for k, v in self.settings.items():
            env[f"RAGCAST_{k.upper()}"] = str(v)
        env.update(
            RAGCAST_BROKER_HEARTBEAT_TIMEOUT_MS="5000",
            RAGCAST_BROKER_MAINTENANCE_CHANCE="200000",
            RAGCAST_WORKERS="1",
            RAGCAST_RETRY_MIN_BACKOFF_MS="200",
            RAGCAST_RECONCILE_INTERVAL_S="1",
            RAGCAST_RECONCILE_STALE_S="4",
            HF_HUB_OFFLINE="1",
        )
        env.update(self.env_extra)
        return env

    def api(self) -> Proc:
        """An API process (with workers in embedded mode), ready."""
        self.port = free_port()
        cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "ragcast.api.app:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--log-level",
            "warning",
        ]
        proc = Proc("api", cmd, self.env(), self.root / "api.log")
        proc.start()
        self.procs.append(proc)
        wait_http(f"http://127.0.0.1:{self.port}/readyz")
        return proc

    def worker(self) -> Proc:
        proc = Proc(
            "worker", [str(BIN / "ragcast"), "worker"], self.env(), self.root / "worker.log"
        )
        proc.start()
        self.procs.append(proc)
        return proc

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=f"http://127.0.0.1:{self.port}{PREFIX}",
            headers={"Authorization": f"Bearer {self.key}"},
            timeout=60,
        )

    def logs(self) -> str:
        """Every process's log."""
        return "\n".join(f"--- {p.name}\n{p.text()}" for p in self.procs)

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()


def upload(c: httpx.Client, paths: list[Path]) -> list[str]:
    docs = []
    for path in paths:
        with path.open("rb") as f:
            r = c.post("/uploads", files={"file": (path.name, f)})
        assert r.status_code == 200, r.text
        docs.append(r.json()["document_id"])
    return docs


def wait_done(c: httpx.Client, job_id: str, timeout: float) -> dict[str, Any]:
    """Poll until the job has its result (a failed poll, the API's store down, is retried)."""
    deadline = time.monotonic() + timeout
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            status = c.get(f"/job/{job_id}/status").json()
        except (httpx.HTTPError, ValueError):
            status = {}
        if status.get("result") is not None:
            return status
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish: {status}")


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def vector_counts(chroma: Any, tenant: str) -> Counter[str]:
    """Vectors per content id of ``tenant`` in every collection of a Chroma client."""
    counts: Counter[str] = Counter()
    for col in chroma.list_collections():
        collection = chroma.get_collection(col.name if hasattr(col, "name") else col)
        got = collection.get(where={"tenant": tenant}, include=["metadatas"])
        counts.update(str(m["content_id"]) for m in got["metadatas"] or [])
    return counts


@dataclass
class Tally:
    """What a fault cost: items lost, vectors duplicated."""

    lost: int
    duplicates: int
    missing_vectors: int


def tally(items: list[dict[str, Any]], counts: Counter[str]) -> Tally:
    """Each item once and completed, with exactly as many vectors as chunks."""
    lost = sum(i["status"] != "completed" for i in items)
    ids = [i["content_id"] for i in items]
    lost += len(ids) - len(set(ids))
    dup = sum(max(0, counts[i["content_id"]] - i["chunks"]) for i in items)
    missing = sum(max(0, i["chunks"] - counts[i["content_id"]]) for i in items)
    return Tally(lost, dup, missing)


def report(name: str, t: Tally, recovered_s: float) -> None:
    print(
        f"FAULT {name}: lost {t.lost} items, {t.duplicates} duplicate vectors, "
        f"recovered in {recovered_s:.1f} s"
    )


class Timer(threading.Thread):
    """Runs ``fn`` after ``delay`` seconds in the background."""

    def __init__(self, delay: float, fn: Any) -> None:
        super().__init__(daemon=True)
        self.delay, self.fn = delay, fn

    def run(self) -> None:
        time.sleep(self.delay)
        self.fn()
