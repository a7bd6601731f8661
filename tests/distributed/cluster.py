"""A real distributed ragcast on this machine: API and worker processes, PostgreSQL,
Redis (or RabbitMQ) and a Chroma server, each test with its own database and key prefix."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

from ragcast.auth import create_key
from ragcast.runner.boot import build_context
from ragcast.settings import Settings

PG_ADMIN = os.environ.get(
    "RAGCAST_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("RAGCAST_TEST_REDIS", "redis://127.0.0.1:6379/0")
AMQP_URL = os.environ.get("RAGCAST_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672/")
BIN = Path(sys.executable).parent
PREFIX = "/api/public/bulk"


def free_port() -> int:
    """A port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 90) -> None:
    """Wait until ``url`` answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not come up")


@dataclass
class Proc:
    """A child process with its log file."""

    name: str
    cmd: list[str]
    env: dict[str, str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(self.cmd, env=self.env, stdout=out, stderr=out)

    def kill(self) -> None:
        assert self.popen is not None
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(timeout=30)

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass
class Cluster:
    """Processes sharing one PostgreSQL database, one broker and one Chroma server."""

    root: Path
    broker_url: str = REDIS_URL
    procs: list[Proc] = field(default_factory=list)
    apis: list[Proc] = field(default_factory=list)
    ports: dict[str, int] = field(default_factory=dict)
    key: str = ""
    extra_env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        token = secrets.token_hex(4)
        self.db_name = f"ragcast_dist_{token}"
        self.prefix = f"ragcast-test-{token}"
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{self.db_name}"'))
        admin.dispose()
        self.database_url = PG_ADMIN.rsplit("/", 1)[0].replace("+psycopg", "") + f"/{self.db_name}"
        chroma_port = free_port()
        self.chroma_url = f"http://127.0.0.1:{chroma_port}"
        self._spawn(
            "chroma",
            [
                str(BIN / "chroma"),
                "run",
                "--path",
                str(self.root / "chroma"),
                "--port",
                str(chroma_port),
            ],
        )
        wait_http(f"{self.chroma_url}/api/v2/heartbeat")
        settings = Settings(**self.settings_kwargs())
        ctx = build_context(settings)
        with ctx.db.session() as s:
            self.key, _ = create_key(s, "dist-user")
        ctx.db.dispose()

    def settings_kwargs(self) -> dict[str, Any]:
        return {
            "data_dir": self.root / "data",
            "database_url": self.database_url,
            "broker_url": self.broker_url,
            "redis_url": REDIS_URL,
            "redis_key_prefix": self.prefix,
            "broker_namespace": self.prefix,
            "chroma_url": self.chroma_url,
        }

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAGCAST_")}
        for k, v in self.settings_kwargs().items():
            env[f"RAGCAST_{k.upper()}"] = str(v)
        env.update(
            RAGCAST_BROKER_HEARTBEAT_TIMEOUT_MS="5000",
            RAGCAST_BROKER_MAINTENANCE_CHANCE="200000",
            RAGCAST_WORKERS="1",
            RAGCAST_RETRY_MIN_BACKOFF_MS="200",
            HF_HUB_OFFLINE="1",
        )
        env.update(self.extra_env)
        return env

    def _spawn(self, name: str, cmd: list[str], env: dict[str, str] | None = None) -> Proc:
        proc = Proc(name, cmd, env or self.env(), self.root / f"{name}.log")
        proc.start()
        self.procs.append(proc)
        return proc

    def api(self) -> Proc:
        """Start an API process (no workers in it) and wait until it is ready."""
        port = free_port()
        name = f"api{len(self.apis)}"
        proc = self._spawn(
            name,
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "ragcast.api.app:create_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
        )
        self.ports[name] = port
        self.apis.append(proc)
        wait_http(f"http://127.0.0.1:{port}/readyz")
        return proc

    def restart(self, proc: Proc) -> None:
        """Start a killed process again with the same command."""
        proc.start()
        if proc.name in self.ports:
            wait_http(f"http://127.0.0.1:{self.ports[proc.name]}/readyz")

    def worker(self, name: str, *queues: str) -> Proc:
        """Start a ``ragcast worker`` process."""
        cmd = [str(BIN / "ragcast"), "worker"]
        for q in queues:
            cmd += ["--queues", q]
        return self._spawn(name, cmd)

    def client(self, api: int = 0) -> httpx.Client:
        """An HTTP client of API process ``api``."""
        port = self.ports[f"api{api}"]
        return httpx.Client(
            base_url=f"http://127.0.0.1:{port}{PREFIX}",
            headers={"Authorization": f"Bearer {self.key}"},
            timeout=120,
        )

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)'))
        admin.dispose()
        try:
            import redis

            r = redis.Redis.from_url(REDIS_URL)
            keys = list(r.scan_iter(f"{self.prefix}*"))
            if keys:
                r.delete(*keys)
        except Exception:
            pass
