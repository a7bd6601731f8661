"""Subscriptions' limits over real sockets: a cap per user, and manual runs that never
overlap, however many ``POST /subscriptions/{id}/run`` arrive at once."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from ragcast.store.models import Job
from tests.conftest import make_settings
from tests.notify.test_webhook_fairness import live_server
from tests.sources.fixtures import FIXTURES, MediaServer, channel_info, register
from tests.sources.test_subscriptions import CHANNEL, body

#: the scheduler looks once at start-up, then not again during a test
QUIET: dict[str, Any] = {
    "allow_loopback_fetch": True,
    "fetch_pause_s": 0.0,
    "subscription_tick_s": 300,
    "rate_limit_process": "1000/hour",
}


def _together(calls: int, call: Any) -> list[httpx.Response]:
    """``call()`` from ``calls`` threads released at the same moment; the answers."""
    barrier = threading.Barrier(calls)
    answers: list[httpx.Response] = []

    def run() -> None:
        barrier.wait()
        answers.append(call())

    threads = [threading.Thread(target=run) for _ in range(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return answers


def test_subscriptions_per_user_are_capped(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, **QUIET, max_subscriptions_per_user=2)
    with live_server(settings) as live, live.client("alice") as alice, live.client("bob") as bob:
        answers = _together(6, lambda: alice.post("/subscriptions", json=body()))
        assert sorted(r.status_code for r in answers) == [200, 200, 409, 409, 409, 409]
        refused = next(r for r in answers if r.status_code == 409).json()
        assert refused["success"] is False and refused["error"] == "conflict"
        assert "RAGCAST_MAX_SUBSCRIPTIONS_PER_USER=2" in refused["message"]
        assert "You have 2 subscriptions" in refused["message"]
        listed = alice.get("/subscriptions").json()
        assert listed["total"] == 2
        assert bob.post("/subscriptions", json=body()).status_code == 200  # a cap per user
        sid = listed["subscriptions"][0]["subscription_id"]
        assert alice.delete(f"/subscriptions/{sid}").status_code == 200
        assert alice.post("/subscriptions", json=body()).status_code == 200


def test_concurrent_manual_runs_start_one_run(tmp_path: Path, media: MediaServer) -> None:
    # The channel's listing waits until released: the run's job stays in progress.
    release = threading.Event()
    register(CHANNEL, channel_info(media, "youtube", CHANNEL, 0, lambda i: {}))
    listing = FIXTURES[CHANNEL]

    def held() -> dict[str, Any]:
        release.wait(60)
        return listing()

    FIXTURES[CHANNEL] = held
    try:
        with live_server(make_settings(tmp_path, **QUIET)) as live, live.client() as alice:
            created = alice.post("/subscriptions", json=body())
            assert created.status_code == 200, created.text
            sid = created.json()["subscription_id"]
            answers = _together(12, lambda: alice.post(f"/subscriptions/{sid}/run"))
            started = [r for r in answers if r.status_code == 200]
            refused = [r for r in answers if r.status_code == 409]
            assert len(started) == 1 and len(refused) == 11, [r.text for r in answers]
            assert started[0].json()["runs"] == 1
            assert started[0].json()["last_job_id"] == f"{sid}-1"
            for r in refused:
                error = r.json()
                assert error["success"] is False and error["error"] == "conflict"
                assert "in progress" in error["message"] and f"{sid}-1" in error["message"]
            with live.ctx.db.session() as s:
                assert s.scalar(select(func.count(Job.id))) == 1
            # Still going: another run now is refused as well.
            again = alice.post(f"/subscriptions/{sid}/run")
            assert again.status_code == 409 and f"{sid}-1" in again.json()["message"]
            release.set()
            deadline = time.monotonic() + 60
            while alice.get(f"/job/{sid}-1/status").json().get("result") is None:
                assert time.monotonic() < deadline, "the run's job did not finish"
                time.sleep(0.1)
            # Finished: the next run starts.
            after = alice.post(f"/subscriptions/{sid}/run")
            assert after.status_code == 200, after.text
            assert after.json()["runs"] == 2 and after.json()["last_job_id"] == f"{sid}-2"
    finally:
        release.set()
