"""A real ragcast server in a background thread, for the SDK and CLI tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI

from ragcast.api.app import create_app
from ragcast.auth import create_key
from ragcast.client import Client
from ragcast.settings import Settings
from tests.conftest import DATA, make_settings, uvicorn_in_thread
from tests.providers.diarizers.mixtures import conversation, write_wav

SRT = """1
00:00:01,000 --> 00:00:04,000
The lighthouse keeper climbed the spiral stairs at dusk.

2
00:01:05,000 --> 00:01:09,500
Every evening he polished the great lens until it shone.
"""


@dataclass
class LiveServer:
    """A running server: its base URL, an API key of user ``alice``, and the app."""

    url: str
    key: str
    app: FastAPI

    def client(self) -> Client:
        """A :class:`Client` of this server."""
        return Client(self.url, self.key)


@contextmanager
def serve_in_thread(settings: Settings) -> Iterator[LiveServer]:
    """Run the app (workers on) with uvicorn on a free port until the block ends."""
    app = create_app(settings)
    with app.state.ctx.db.session() as s:
        key, _ = create_key(s, "alice")
    with uvicorn_in_thread(app) as url:
        yield LiveServer(url, key, app)


@contextmanager
def diarized_server(tmp: Path, job_id: str) -> Iterator[LiveServer]:
    """A real server with one finished two-speaker job ``job_id`` (diarized; small chunks,
    so each chunk is mostly one speaker's)."""
    wav = write_wav(conversation(DATA).audio, tmp / "conversation.wav")
    with serve_in_thread(make_settings(tmp / "server")) as live, live.client() as client:
        doc = client.upload(wav)["document_id"]
        client.process(
            {
                "job_id": job_id,
                "platform": "documents",
                "input_method": "upload",
                "uploaded_documents": [doc],
                "embedding_model": {"id": "local"},
                "vector_db": {"id": "chroma"},
                "settings": {"chunkSize": 48, "chunkOverlap": 8, "diarize": True},
            }
        )
        status = client.wait(job_id, poll_s=0.5, timeout=240)
        assert status["status"] == "completed", status
        yield live


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LiveServer]:
    """A real server on ``tmp_path / "server"``, models not preloaded."""
    with serve_in_thread(make_settings(tmp_path / "server")) as live:
        yield live


@pytest.fixture
def subtitles(tmp_path: Path) -> Path:
    """A small SubRip file: a document with time spans, quick to index."""
    path = tmp_path / "lighthouse.srt"
    path.write_text(SRT)
    return path
