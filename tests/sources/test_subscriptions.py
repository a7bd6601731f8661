"""Subscriptions: runs as ordinary jobs of a channel's new items, the scheduler, the API."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from ragcast.api.app import create_app
from ragcast.context import Context
from ragcast.runner.boot import build_context
from ragcast.sources.subscriptions import Scheduler, run_due
from ragcast.store.models import Job, Subscription, User, Webhook, WebhookDelivery, utcnow
from tests.conftest import PREFIX, Api, fresh_postgres, make_settings
from tests.sources.fixtures import MediaServer, channel_info, register, video_info

CHANNEL = "https://www.youtube.com/@subscribed/videos"
VIDEOS = [  # id, recording, title (all captioned: no transcription needed)
    ("subs0000001", "clip01.flac", "First upload"),
    ("subs0000002", "clip02.wav", "Second upload"),
    ("subs0000003", "clip03.wav", "Third upload"),
]


def publish(media: MediaServer, n: int) -> None:
    """Make the fixture channel list its first ``n`` videos."""
    for vid, file, title in VIDEOS[:n]:
        register(
            f"https://www.youtube.com/watch?v={vid}",
            video_info(media, "youtube", vid, file, title=title, captions=True),
        )

    def entry(i: int) -> dict[str, Any]:
        vid, _, title = VIDEOS[i]
        return {
            "_type": "url",
            "ie_key": "Youtube",
            "id": vid,
            "title": title,
            "url": f"https://www.youtube.com/watch?v={vid}",
            "duration": 10.0,
            "upload_date": "20250105",
        }

    register(CHANNEL, channel_info(media, "youtube", CHANNEL, n, entry))


def body(**extra: Any) -> dict[str, Any]:
    """A valid ``POST /subscriptions`` body."""
    out: dict[str, Any] = {
        "platform": "youtube",
        "channel_url": CHANNEL,
        "embedding_model": {"id": "local", "label": "default"},
        "vector_db": {"id": "chroma", "label": "Chroma"},
        "settings": {"chunkSize": 64, "chunkOverlap": 0, "maxTokens": 8192},
        "interval": "15m",
    }
    out.update(extra)
    return out


@pytest.fixture
def sub_api(api_factory: Callable[..., Api], media: MediaServer) -> Api:
    """An app whose scheduler looks every 0.1 s, with a channel of two videos."""
    publish(media, 2)
    return api_factory(
        allow_loopback_fetch=True,
        fetch_pause_s=0.0,
        fetch_backoff_s=0.1,
        subscription_tick_s=0.1,
    )


def ctx_of(api: Api) -> Context:
    """The app's context."""
    ctx: Context = api.client.app.state.ctx  # type: ignore[attr-defined]
    return ctx


def get(api: Api, sid: str, user: str = "alice") -> dict[str, Any]:
    """``GET /subscriptions/{sid}``."""
    r = api.client.get(f"{PREFIX}/subscriptions/{sid}", headers=api.h(user))
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def wait_run(api: Api, sid: str, run: int, timeout: float = 180) -> dict[str, Any]:
    """Poll until run ``run`` of ``sid`` has recorded its result."""
    deadline = time.monotonic() + timeout
    sub = get(api, sid)
    while time.monotonic() < deadline:
        sub = get(api, sid)
        if sub["runs"] >= run and sub["last_result"] and sub["last_result"].get("run") == run:
            return sub
        time.sleep(0.1)
    raise AssertionError(f"run {run} of {sid} did not finish: {sub}")


def make_due(ctx: Context, sid: str) -> None:
    """Move the subscription's next run into the past."""
    with ctx.db.session() as s:
        s.execute(
            update(Subscription)
            .where(Subscription.subscription_id == sid)
            .values(next_run_at=utcnow() - timedelta(seconds=1))
        )


def items(api: Api, job_id: str) -> list[str]:
    """The content ids of a job's items."""
    r = api.client.get(f"{PREFIX}/job/{job_id}/items", headers=api.h())
    return [i["content_id"] for i in r.json()["items"]]


@pytest.mark.slow
def test_runs_index_only_what_is_new_and_report_it(sub_api: Api, media: MediaServer) -> None:
    api, ctx = sub_api, ctx_of(sub_api)
    with ctx.db.session() as s:
        alice = s.scalar(select(User.id).where(User.name == "alice"))
        assert alice is not None
        s.add(
            Webhook(
                webhook_id="wh_subs",
                user_id=alice,
                url="http://127.0.0.1:9/hook",
                events=["subscription.synced"],
                secret="whsec_" + "A" * 32,
            )
        )
    r = api.client.post(f"{PREFIX}/subscriptions", json=body(interval="1h"), headers=api.h())
    assert r.status_code == 200, r.text
    created = r.json()
    sid = created["subscription_id"]
    assert sid.startswith("sub_") and created["interval"] == 3600
    assert created["status"] == "active" and created["runs"] == 0
    assert created["embedding_model"]["model"]  # the local model is pinned for every run
    # The first run starts at once: an ordinary job of the whole channel.
    first = wait_run(api, sid, 1)
    assert first["last_job_id"] == f"{sid}-1"
    assert first["last_job"]["status"] == "completed"
    assert first["last_job"]["result"]["total_items"] == 2
    assert first["last_result"]["completed_items"] == 2
    status = api.client.get(f"{PREFIX}/job/{sid}-1/status", headers=api.h()).json()
    assert status["status"] == "completed"
    hits = dict(media.hits)
    # A new upload on the channel: the next run processes it alone.
    publish(media, 3)
    make_due(ctx, sid)
    second = wait_run(api, sid, 2)
    assert second["last_job_id"] == f"{sid}-2" and second["runs"] == 2
    assert second["last_job"]["result"]["total_items"] == 1
    assert items(api, f"{sid}-2") == ["youtube-subs0000003"]
    assert {k: v for k, v in media.hits.items() if k in hits} == hits  # nothing fetched again
    # Nothing new: the run is an empty job.
    make_due(ctx, sid)
    third = wait_run(api, sid, 3)
    assert third["last_job"]["result"]["total_items"] == 0
    assert third["last_job"]["status"] == "completed"
    # One subscription.synced event per finished run.
    with ctx.db.session() as s:
        events = s.scalars(
            select(WebhookDelivery).where(WebhookDelivery.event == "subscription.synced")
        ).all()
        runs = sorted(e.payload["data"]["run"] for e in events)
        assert runs == [1, 2, 3]
        assert {e.payload["data"]["subscription_id"] for e in events} == {sid}
    # Run now: a fourth run at once, the schedule moved an interval on.
    r = api.client.post(f"{PREFIX}/subscriptions/{sid}/run", headers=api.h())
    assert r.status_code == 200, r.text
    assert r.json()["runs"] == 4 and r.json()["last_job_id"] == f"{sid}-4"
    assert wait_run(api, sid, 4)["last_job"]["result"]["total_items"] == 0


@pytest.mark.slow
def test_a_paused_subscription_does_not_run_until_resumed(sub_api: Api) -> None:
    api, ctx = sub_api, ctx_of(sub_api)
    sid = api.client.post(f"{PREFIX}/subscriptions", json=body(), headers=api.h()).json()[
        "subscription_id"
    ]
    wait_run(api, sid, 1)
    r = api.client.post(f"{PREFIX}/subscriptions/{sid}/pause", headers=api.h())
    assert r.status_code == 200 and r.json()["status"] == "paused"
    make_due(ctx, sid)
    time.sleep(1.0)  # ten ticks
    assert get(api, sid)["runs"] == 1
    listed = api.client.get(f"{PREFIX}/subscriptions", headers=api.h()).json()
    assert listed["total"] == 1 and listed["subscriptions"][0]["status"] == "paused"
    r = api.client.post(f"{PREFIX}/subscriptions/{sid}/resume", headers=api.h())
    assert r.status_code == 200 and r.json()["status"] == "active"
    assert wait_run(api, sid, 2)["last_job"]["status"] == "completed"
    # Deleted: gone from the list, its jobs stay.
    r = api.client.delete(f"{PREFIX}/subscriptions/{sid}", headers=api.h())
    assert r.status_code == 200 and r.json()["deleted"] is True
    assert api.client.get(f"{PREFIX}/subscriptions/{sid}", headers=api.h()).status_code == 404
    assert api.client.get(f"{PREFIX}/job/{sid}-2/status", headers=api.h()).status_code == 200


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"interval": 600}, "interval"),
        ({"interval": "14m"}, "interval"),
        ({"interval": "soon"}, "interval"),
        ({"interval": 0}, "interval"),
        ({"platform": "myspace"}, "platform"),
        ({"platform": "documents"}, "platform"),
        ({"channel_url": "http://169.254.169.254/latest/meta-data/"}, "channel_url"),
        ({"channel_url": "http://10.0.0.7/channel"}, "channel_url"),
        ({"channel_url": "file:///etc/passwd"}, "channel_url"),
        ({"channel_url": "https://www.tiktok.com/@creator"}, "channel_url"),
        ({"vector_db": {"id": "mongodb"}}, "vector_db.id"),
        ({"embedding_model": {"id": "word2vec"}}, "embedding_model.id"),
        ({"settings": {"chunkSize": 100, "chunkOverlap": 100}}, "settings.chunkOverlap"),
        ({"settings": {"force": True}}, "settings.force"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(api: Api, change: dict[str, Any], field: str) -> None:
    r = api.client.post(f"{PREFIX}/subscriptions", json=body(**change), headers=api.h())
    assert r.status_code == 400, r.text
    assert r.json()["details"]["field"] == field
    assert api.client.get(f"{PREFIX}/subscriptions", headers=api.h()).json()["total"] == 0


def test_intervals_in_seconds_or_units(api_factory: Callable[..., Api]) -> None:
    api = api_factory(subscription_tick_s=300)
    for given, seconds in (("1d", 86400), (3600, 3600), ("15m", 900), ("2h", 7200)):
        r = api.client.post(f"{PREFIX}/subscriptions", json=body(interval=given), headers=api.h())
        assert r.status_code == 200, r.text
        assert r.json()["interval"] == seconds


def test_another_users_subscription_is_not_found(api_factory: Callable[..., Api]) -> None:
    api = api_factory(subscription_tick_s=300)
    r = api.client.post(f"{PREFIX}/subscriptions", json=body(), headers=api.h())
    sid = r.json()["subscription_id"]
    for method, path in (
        ("get", ""),
        ("post", "/pause"),
        ("post", "/resume"),
        ("post", "/run"),
        ("delete", ""),
    ):
        answer = api.client.request(
            method, f"{PREFIX}/subscriptions/{sid}{path}", headers=api.h("bob")
        )
        assert answer.status_code == 404, (method, path, answer.text)
    assert api.client.get(f"{PREFIX}/subscriptions", headers=api.h("bob")).json()["total"] == 0
    assert get(api, sid)["status"] == "active"
    bad = api.client.get(f"{PREFIX}/subscriptions/not-an-id", headers=api.h())
    assert bad.status_code == 400


# Two schedulers over one store: two contexts, as two processes would have.


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.service)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh job store: SQLite on a file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'shared.db'}"
        return
    with fresh_postgres() as url:
        yield url


def _contexts(tmp_path: Path, url: str) -> list[Context]:
    ctxs = []
    for n in range(2):
        settings = make_settings(
            tmp_path / f"proc{n}", database_url=url, subscription_lease_ttl_s=30.0
        )
        ctxs.append(build_context(settings))
    return ctxs


def _subscriptions(ctx: Context, n: int) -> list[str]:
    """``n`` due subscriptions of one user, straight into the store."""
    request = {
        "embedding_model": {"id": "local"},
        "vector_db": {"id": "chroma"},
        "settings": {"chunkSize": 64, "chunkOverlap": 0},
    }
    with ctx.db.session() as s:
        user = User(name="carol")
        s.add(user)
        s.flush()
        sids = [f"sub_race{i}" for i in range(n)]
        for sid in sids:
            s.add(
                Subscription(
                    subscription_id=sid,
                    user_id=user.id,
                    platform="youtube",
                    channel_url=CHANNEL,
                    request=request,
                    interval_s=900,
                    next_run_at=utcnow() - timedelta(seconds=5),
                )
            )
    return sids


def _together(calls: list[Callable[[], list[str]]]) -> list[list[str]]:
    """Run ``calls`` in threads released at the same moment; their answers."""
    barrier = threading.Barrier(len(calls))
    out: list[list[str]] = [[] for _ in calls]

    def run(i: int) -> None:
        barrier.wait()
        out[i] = calls[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return out


def test_two_schedulers_start_one_job_per_due_subscription(tmp_path: Path, store_url: str) -> None:
    ctxs = _contexts(tmp_path, store_url)
    try:
        sids = _subscriptions(ctxs[0], 3)
        sent: list[int] = []
        schedulers = [Scheduler(c, sent.append, holder=f"proc{i}") for i, c in enumerate(ctxs)]
        # The lease: one of the two starts the runs, the other nothing.
        answers = _together([s.tick for s in schedulers])
        assert sorted(len(a) for a in answers) == [0, 3]
        assert sorted(job for a in answers for job in a) == [f"{sid}-1" for sid in sids]
        assert sum(s.holds_lease for s in schedulers) == 1
        # Without the lease (two schedulers that both think they hold it), the claim of
        # each run still lets one start it.
        with ctxs[0].db.session() as s:
            s.execute(update(Subscription).values(next_run_at=utcnow() - timedelta(seconds=1)))
        # Runs never overlap: while a run's job is going, the next due run waits for it.
        assert run_due(ctxs[0], sent.append) == []
        with ctxs[0].db.session() as s:
            s.execute(update(Job).values(status="completed", finished_at=utcnow()))
        answers = _together([lambda c=c: run_due(c, sent.append) for c in ctxs * 2])
        assert sorted(job for a in answers for job in a) == [f"{sid}-2" for sid in sids]
        with ctxs[1].db.session() as s:
            assert s.scalar(select(func.count(Job.id))) == 6
            runs = s.scalars(select(Subscription.runs)).all()
            assert list(runs) == [2, 2, 2]
        assert len(sent) == len(set(sent)) == 6
        # Not due: nothing starts; the holder gives the lease up when it stops.
        assert run_due(ctxs[0], sent.append) == []
        for sched in schedulers:
            sched.stop()
        assert not any(s.holds_lease for s in schedulers)
    finally:
        for c in ctxs:
            c.db.dispose()


def test_schedulers_stop_cleanly_with_their_apps(tmp_path: Path) -> None:
    for n in range(3):
        app = create_app(make_settings(tmp_path / f"app{n}", subscription_tick_s=0.05))
        with TestClient(app):
            time.sleep(0.2)
            assert "ragcast-subscriptions" in [t.name for t in threading.enumerate()]
        assert "ragcast-subscriptions" not in [t.name for t in threading.enumerate()]


def test_a_wrong_method_names_every_method_of_the_path(api: Api) -> None:
    r = api.client.put(f"{PREFIX}/subscriptions", headers=api.h())
    assert r.status_code == 405 and r.headers["allow"] == "GET, POST"
    r = api.client.patch(f"{PREFIX}/subscriptions/sub_x", headers=api.h())
    assert r.status_code == 405 and r.headers["allow"] == "DELETE, GET"
