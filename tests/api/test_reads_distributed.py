"""An API process of a distributed deployment keeps statuses and keys in memory only while
it follows the Redis channels: a worker's event and an announced key change clear them."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from ragcast.api.app import create_app
from ragcast.auth import announce_key_change, create_key
from ragcast.runner.redis_events import RedisEventBus
from ragcast.store.models import ApiKey, Job
from tests.api.seed import seed_job
from tests.conftest import PREFIX, fresh_postgres, make_settings

pytestmark = pytest.mark.service

REDIS_URL = os.environ.get("RAGCAST_TEST_REDIS", "redis://127.0.0.1:6379/0")


@pytest.fixture
def distributed(tmp_path: Path) -> Iterator[tuple[TestClient, str, str]]:
    """An API-only app on PostgreSQL and Redis: its client, alice's key, the key prefix."""
    prefix = f"ragcast-test-{secrets.token_hex(4)}"
    with fresh_postgres() as url:
        settings = make_settings(
            tmp_path,
            database_url=url,
            broker_url=REDIS_URL,
            redis_url=REDIS_URL,
            redis_key_prefix=prefix,
            broker_namespace=prefix,
        )
        app = create_app(settings)
        with app.state.ctx.db.session() as s:
            key, _ = create_key(s, "alice")
        with TestClient(app) as client:
            deadline = time.monotonic() + 10
            while not app.state.statuses.enabled:  # until the channels are followed
                assert time.monotonic() < deadline, "the Redis channels were not followed"
                time.sleep(0.05)
            yield client, key, prefix
        app.state.ctx.db.dispose()


def test_an_event_from_a_worker_elsewhere_clears_a_kept_status(
    distributed: tuple[TestClient, str, str],
) -> None:
    client, key, prefix = distributed
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    job_pk = seed_job(ctx, "alice", "far", 2, finished=False)
    headers = {"Authorization": f"Bearer {key}"}
    url = f"{PREFIX}/job/far/status"
    assert client.get(url, headers=headers).json()["progress"] == 40.0
    assert client.get(url, headers=headers).json()["progress"] == 40.0  # kept
    with ctx.db.session() as s:
        s.execute(update(Job).where(Job.id == job_pk).values(progress=90.0))
    RedisEventBus(REDIS_URL, prefix).publish(job_pk, {"type": "progress", "progress": 90.0})
    deadline = time.monotonic() + 5
    while client.get(url, headers=headers).json()["progress"] != 90.0:
        assert time.monotonic() < deadline, "the event did not clear the kept status"
        time.sleep(0.02)


def test_an_announced_key_change_clears_the_kept_keys(
    distributed: tuple[TestClient, str, str],
) -> None:
    client, key, prefix = distributed
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    headers = {"Authorization": f"Bearer {key}"}
    assert client.get(f"{PREFIX}/jobs", headers=headers).status_code == 200
    assert client.get(f"{PREFIX}/jobs", headers=headers).status_code == 200  # kept
    with ctx.db.session() as s:  # as another machine's `ragcast keys revoke` writes it
        revoked = update(ApiKey).where(ApiKey.prefix == key[:11])
        s.execute(revoked.values(revoked_at=datetime.now(UTC)))
    announce_key_change(REDIS_URL, prefix)
    deadline = time.monotonic() + 5
    while client.get(f"{PREFIX}/jobs", headers=headers).status_code != 401:
        assert time.monotonic() < deadline, "the announced change did not clear the key"
        time.sleep(0.02)
