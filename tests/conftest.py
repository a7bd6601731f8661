"""Shared fixtures: a real app on a temporary data dir, users with keys, real recordings."""

from __future__ import annotations

import csv
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from ragcast.api.app import create_app
from ragcast.auth import create_key
from ragcast.settings import Settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DATA = Path(
    os.environ.get("RAGCAST_TEST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)
PREFIX = "/api/public/bulk"
#: a PostgreSQL role that may create databases (the machine's server, trust auth)
PG_ADMIN = os.environ.get(
    "RAGCAST_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


@contextmanager
def fresh_postgres() -> Iterator[str]:
    """A new, empty PostgreSQL database for one test: its URL; dropped afterwards."""
    name = f"ragcast_test_{secrets.token_hex(4)}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN.rsplit("/", 1)[0].replace("+psycopg", "") + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


@dataclass
class Recording:
    """A real recording from ``shared/data`` with its reference transcript."""

    path: Path
    language: str
    duration_s: float
    reference: str


def recordings() -> list[Recording]:
    """Every recording in the shared manifest."""
    with (DATA / "manifest.csv").open(newline="") as f:
        return [
            Recording(DATA / r["file"], r["language"], float(r["duration_s"]), r["reference_text"])
            for r in csv.DictReader(f)
        ]


@pytest.fixture(scope="session")
def english_recordings() -> list[Recording]:
    """The English recordings."""
    return [r for r in recordings() if r.language == "en"]


def make_settings(tmp: Path, **overrides: Any) -> Settings:
    """Settings on a private data dir; models are the packaged defaults."""
    values: dict[str, Any] = {"data_dir": tmp, "preload_models": False}
    values.update(overrides)
    return Settings(**values)


@dataclass
class Api:
    """A running app with two ordinary users and one admin."""

    client: TestClient
    settings: Settings
    keys: dict[str, str]

    def h(self, user: str = "alice") -> dict[str, str]:
        """Auth header of ``user``."""
        return {"Authorization": f"Bearer {self.keys[user]}"}

    def upload(self, path: Path, user: str = "alice", name: str | None = None) -> str:
        """Upload a file; returns its document id."""
        with path.open("rb") as f:
            r = self.client.post(
                f"{PREFIX}/uploads", files={"file": (name or path.name, f)}, headers=self.h(user)
            )
        assert r.status_code == 200, r.text
        return str(r.json()["document_id"])

    def submit(self, job_id: str, docs: list[str], user: str = "alice", **extra: Any) -> Any:
        """Submit an upload job for ``docs``."""
        body = job_body(job_id, docs, **extra)
        return self.client.post(f"{PREFIX}/process", json=body, headers=self.h(user))

    def wait(self, job_id: str, user: str = "alice", timeout: float = 240) -> dict[str, Any]:
        """Poll until the job is finished."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = self.client.get(f"{PREFIX}/job/{job_id}/status", headers=self.h(user))
            body: dict[str, Any] = r.json()
            if body.get("result") is not None:
                return body
            time.sleep(0.2)
        raise AssertionError(f"job {job_id} did not finish: {body}")


def job_body(job_id: str, docs: list[str], **extra: Any) -> dict[str, Any]:
    """A valid ``POST /process`` body for uploaded documents."""
    body: dict[str, Any] = {
        "job_id": job_id,
        "platform": "documents",
        "input_method": "upload",
        "selected_content": [],
        "uploaded_documents": docs,
        "embedding_model": {"id": "local", "label": "MiniLM"},
        "vector_db": {"id": "chroma", "label": "Chroma"},
        "settings": {"chunkSize": 256, "chunkOverlap": 32, "maxTokens": 8192},
        "user_id": "ignored",
    }
    body.update(extra)
    return body


@pytest.fixture
def api_factory(tmp_path: Path) -> Iterator[Callable[..., Api]]:
    """Build apps on ``tmp_path`` with extra settings; closed at teardown."""
    opened: list[TestClient] = []

    def factory(**overrides: Any) -> Api:
        settings = make_settings(tmp_path, **overrides)
        app = create_app(settings)
        keys = {}
        with app.state.ctx.db.session() as s:
            for name, admin in (("alice", False), ("bob", False), ("root", True)):
                keys[name], _ = create_key(s, name, admin=admin)
        client = TestClient(app)
        client.__enter__()
        opened.append(client)
        return Api(client=client, settings=settings, keys=keys)

    yield factory
    for c in opened:
        c.__exit__(None, None, None)


@pytest.fixture
def api(api_factory: Callable[..., Api]) -> Api:
    """An app with default settings."""
    return api_factory()


@contextmanager
def uvicorn_in_thread(app: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free port in a thread; yields its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_config=None, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
