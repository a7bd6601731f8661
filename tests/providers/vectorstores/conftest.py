"""Real backends for the vector store tests: Chroma and Qdrant on disk, pgvector on the
PostgreSQL that the ``pgserver`` wheel carries, Pinecone's SDK against a local index."""

from __future__ import annotations

import shutil
import tempfile
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ragcast.providers.vectorstores.base import VectorStore
from ragcast.settings import Settings
from tests.providers.vectorstores.fake_pinecone import FakePinecone, serve

if TYPE_CHECKING:
    from ragcast.providers.vectorstores.pinecone import PineconeStore

BACKENDS = ("chroma", "qdrant", "pgvector", "pinecone")
DIMS = 8  # the conformance suite's vectors; the fake Pinecone index is built with it


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """A PostgreSQL with pgvector for the whole session (fails, never skips, when absent)."""
    with warnings.catch_warnings():
        # platformdirs warns at import when XDG_RUNTIME_DIR is unset (CI, containers).
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        import pgserver

    # Not under pytest's own folders: run as root, pgserver runs PostgreSQL as its own
    # ``pgserver`` user, and pytest keeps its base folder private (0700) to root.
    pgdata = Path(tempfile.mkdtemp(prefix="ragcast-pgvector-"))
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(pgdata, ignore_errors=True)


@pytest.fixture
def fake_pinecone() -> Iterator[tuple[FakePinecone, str]]:
    """A fresh local Pinecone index of ``DIMS`` dimensions and its host URL."""
    index = FakePinecone(dimension=DIMS)
    with serve(index) as host:
        yield index, host


def pinecone_store(host: str, api_key: str) -> PineconeStore:
    """ragcast's Pinecone store on ``host`` through the official SDK."""
    from ragcast.providers.vectorstores.pinecone import PineconeStore

    settings = Settings(pinecone_api_key=api_key, pinecone_host=host)
    return PineconeStore.from_settings(settings)


@pytest.fixture(params=BACKENDS)
def store(
    request: pytest.FixtureRequest, tmp_path: Path, pg_dsn_lazy: Callable[[], str]
) -> Iterator[VectorStore]:
    """Each backend in turn, empty."""
    backend: str = request.param
    if backend == "chroma":
        from ragcast.providers.vectorstores.chroma import ChromaStore

        yield ChromaStore(path=tmp_path / "chroma")
    elif backend == "qdrant":
        from ragcast.providers.vectorstores.qdrant import QdrantStore

        qdrant = QdrantStore(path=str(tmp_path / "qdrant"))
        yield qdrant
        qdrant.close()
    elif backend == "pgvector":
        from ragcast.providers.vectorstores.pgvector import PgVectorStore

        pg = PgVectorStore(pg_dsn_lazy(), schema=f"t_{uuid.uuid4().hex[:12]}")
        yield pg
        pg.close()
    else:
        index = FakePinecone(dimension=DIMS)
        with serve(index) as host:
            pine = pinecone_store(host, index.api_key)
            yield pine
            pine.close()


@pytest.fixture
def pg_dsn_lazy(request: pytest.FixtureRequest) -> Callable[[], str]:
    """Starts the session's PostgreSQL only for the tests that use it."""
    return lambda: str(request.getfixturevalue("pg_dsn"))
