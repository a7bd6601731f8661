"""The same models and migrations on a real PostgreSQL, with a whole job through them."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import Api

pytestmark = pytest.mark.service

ADMIN_URL = os.environ.get(
    "RAGCAST_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture
def pg_url() -> Iterator[str]:
    name = f"ragcast_test_{secrets.token_hex(4)}"
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield ADMIN_URL.rsplit("/", 1)[0].replace("+psycopg", "") + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


def test_a_job_runs_on_postgresql(
    api_factory: Callable[..., Api], pg_url: str, tmp_path: Path
) -> None:
    api = api_factory(database_url=pg_url)
    path = tmp_path / "notes.md"
    path.write_text("# Harbour\n\nThe ferry leaves at nine. It returns at six.")
    first = api.submit("pg-job", [api.upload(path)])
    assert first.status_code == 200
    assert api.submit("pg-job", [api.upload(path)]).status_code == 409
    status = api.wait("pg-job")
    assert status["status"] == "completed" and status["embeddings"] >= 1
    hits = api.client.post(
        "/api/public/bulk/search", json={"query": "when does the ferry leave"}, headers=api.h()
    ).json()["results"]
    assert "ferry" in hits[0]["text"]
