"""The reconciler: lost work is found and sent again once, work in progress is left alone,
one process sweeps at a time, and a stage run twice records and counts once."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from ragcast.context import Context
from ragcast.runner import tasks
from ragcast.runner.boot import build_context
from ragcast.runner.reconciler import ActiveWork, Held, Reconciler, held_work
from ragcast.store.models import Item, Job, User, WorkerHeartbeat, utcnow
from tests.conftest import PREFIX, Api, make_settings


class FakeSends:
    """Records what the reconciler sends; ``held`` plays the broker's messages."""

    def __init__(self) -> None:
        self.stages: list[tuple[list[int], str]] = []
        self.starts: list[int] = []
        self.exports: list[int] = []
        self.held: Held | None = {"item": set(), "job": set(), "export": set()}

    def enqueue_stage(self, item_ids: list[int], stage: str) -> None:
        self.stages.append((item_ids, stage))

    def send_start(self, job_pk: int) -> None:
        self.starts.append(job_pk)

    def send_export(self, export_pk: int) -> None:
        self.exports.append(export_pk)

    def held_messages(self) -> Held | None:
        return self.held


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[Context]:
    c = build_context(make_settings(tmp_path, reconcile_interval_s=1, reconcile_stale_s=30))
    yield c
    c.db.dispose()


def _job(ctx: Context, n_items: int, *, status: str = "processing", age_s: float = 60) -> int:
    """A job of uploaded documents with ``n_items`` items, last touched ``age_s`` ago."""
    old = utcnow() - timedelta(seconds=age_s)
    with ctx.db.session() as s:
        user = s.scalar(select(User).where(User.name == "u")) or User(name="u")
        s.add(user)
        s.flush()
        job = Job(
            job_id=f"j{utcnow().timestamp()}",
            user_id=user.id,
            request_hash="h",
            request={"embedding_model": {"id": "local"}, "settings": {}},
            platform="documents",
            input_method="upload",
            embedding_model="local",
            dimensions=512,
            vector_db="chroma",
            collection="c",
            status=status,
            total_content=n_items,
            created_at=old,
        )
        s.add(job)
        s.flush()
        for n in range(n_items):
            s.add(
                Item(
                    job_pk=job.id,
                    index=n,
                    content_id=f"doc{n}",
                    source_type="upload",
                    source_ref=f"doc{n}",
                    content_type="text/plain",
                    status="processing",
                    stage="fetched",
                )
            )
        s.flush()
        s.execute(update(Item).where(Item.job_pk == job.id).values(updated_at=old))
        return job.id


def _items(ctx: Context, job_pk: int) -> list[int]:
    with ctx.db.session() as s:
        return list(s.scalars(select(Item.id).where(Item.job_pk == job_pk).order_by(Item.id)))


def _reconciler(ctx: Context, sends: FakeSends, holder: str = "a") -> Reconciler:
    return Reconciler(ctx, sends, ActiveWork(), holder=holder, clock=Clock())


def test_lost_items_are_sent_again_once_after_two_sweeps(ctx: Context) -> None:
    job_pk = _job(ctx, 3)
    ids = _items(ctx, job_pk)
    sends = FakeSends()
    rec = _reconciler(ctx, sends)
    assert not rec.sweep()  # seen lost once: a suspect, not yet sent
    done = rec.sweep()
    assert sorted(done.items) == ids
    assert sends.stages == [(ids, "transcribed")]  # light items: one batch message
    # sent: their progress mark moved, so neither this nor another sweep sends them again
    assert not rec.sweep() and not rec.sweep()
    assert not _reconciler(ctx, sends, "b").sweep()
    assert len(sends.stages) == 1


def test_work_in_progress_or_in_the_broker_is_left_alone(ctx: Context) -> None:
    job_pk = _job(ctx, 3)
    a, b, c = _items(ctx, job_pk)
    fresh_job = _job(ctx, 1, age_s=0)
    sends = FakeSends()
    sends.held = held_work([("stage_transcribed", ([a],))])  # the broker holds a's message
    other = ActiveWork()  # another process is running b
    with other.holding("item", [b]):
        Reconciler(ctx, sends, other, holder="other").beat()
    rec = _reconciler(ctx, sends)
    rec.sweep()
    done = rec.sweep()
    assert done.items == [c]
    assert fresh_job not in done.jobs and not sends.starts
    # a heartbeat that stopped is no protection once it is stale
    with ctx.db.session() as s:
        s.execute(update(WorkerHeartbeat).values(beat_at=utcnow() - timedelta(seconds=60)))
    rec.sweep()
    assert rec.sweep().items == [b]


def test_unstarted_jobs_and_unclosed_jobs(ctx: Context) -> None:
    pending = _job(ctx, 1, status="pending")
    finished = _job(ctx, 1)
    with ctx.db.session() as s:
        s.execute(update(Item).where(Item.job_pk == finished).values(status="completed"))
    sends = FakeSends()
    rec = _reconciler(ctx, sends)
    rec.sweep()
    done = rec.sweep()
    assert done.jobs == [pending] and sends.starts == [pending]
    assert done.closed == [finished]
    with ctx.db.session() as s:
        assert s.get(Job, finished).status == "completed"  # type: ignore[union-attr]


def test_a_pending_job_at_its_users_limit_waits(ctx: Context) -> None:
    for _ in range(ctx.settings.max_active_jobs_per_user):
        _job(ctx, 0)
    waiting = _job(ctx, 0, status="pending")
    sends = FakeSends()
    rec = _reconciler(ctx, sends)
    rec.sweep()
    assert waiting not in rec.sweep().jobs


def test_when_the_broker_cannot_tell_staleness_and_heartbeats_decide(ctx: Context) -> None:
    job_pk = _job(ctx, 2)
    sends = FakeSends()
    sends.held = None  # RabbitMQ
    rec = _reconciler(ctx, sends)
    rec.sweep()
    assert sorted(rec.sweep().items) == _items(ctx, job_pk)


def test_one_process_sweeps_at_a_time(ctx: Context) -> None:
    _job(ctx, 1)
    first, second = FakeSends(), FakeSends()
    a, b = _reconciler(ctx, first, "a"), _reconciler(ctx, second, "b")
    for _ in range(2):
        a.tick()
        a._last_sweep = None  # type: ignore[attr-defined]  # due again at once
        b.tick()
        b._last_sweep = None  # type: ignore[attr-defined]
    assert first.stages and not second.stages


def test_a_heartbeat_names_the_work_in_progress(ctx: Context) -> None:
    active = ActiveWork()
    rec = Reconciler(ctx, FakeSends(), active, holder="p")
    with active.holding("item", [1, 2]), active.holding("export", [7]):
        rec.beat()
        with ctx.db.session() as s:
            work: dict[str, Any] = s.get(WorkerHeartbeat, "p").work  # type: ignore[union-attr]
        assert work == {"item": [1, 2], "job": [], "export": [7]}
    assert active.snapshot() == {"item": [], "job": [], "export": []}
    rec.stop()
    with ctx.db.session() as s:
        assert s.get(WorkerHeartbeat, "p") is None


def test_a_stage_sent_twice_is_recorded_and_counted_once(
    api_factory: Callable[..., Api], tmp_path: Path
) -> None:
    api = api_factory()
    ctx: Context = api.client.app.state.ctx  # type: ignore[attr-defined]
    docs = []
    for n in range(2):
        path = tmp_path / f"note{n}.txt"
        path.write_text(f"Note {n}: the lighthouse keeper lit the lamp at dusk.")
        docs.append(api.upload(path))
    assert api.submit("twice", docs).status_code == 200
    assert api.wait("twice")["status"] == "completed"
    with ctx.db.session() as s:
        job = s.scalar(select(Job).where(Job.job_id == "twice"))
        assert job is not None
        before = (job.content_processed, job.embeddings, job.work_done)
        ids = list(s.scalars(select(Item.id).where(Item.job_pk == job.id)))
    sent: list[tuple[list[int], str]] = []
    for stage in ("fetched", "transcribed", "chunked", "embedded", "indexed"):
        tasks.run_stage(ctx, ids, stage, lambda i, st: sent.append((i, st)))
    assert sent == []  # finished stages are not run again, and send nothing on
    with ctx.db.session() as s:
        job = s.get(Job, job.id)
        assert job is not None
        assert (job.content_processed, job.embeddings, job.work_done) == before
        assert {i.status for i in job.items} == {"completed"}
    r = api.client.get(f"{PREFIX}/job/twice/items", headers=api.h())
    assert [i["status"] for i in r.json()["items"]] == ["completed", "completed"]


def test_a_concurrent_run_that_recorded_first_supersedes(ctx: Context) -> None:
    job_pk = _job(ctx, 1)
    (item_id,) = _items(ctx, job_pk)
    with ctx.db.session() as s:
        item = s.get(Item, item_id)
        assert item is not None
        # another run recorded "transcribed" after this run read the item at "fetched"
        s.execute(update(Item).where(Item.id == item_id).values(stage="transcribed"))
        with pytest.raises(tasks.Superseded):
            tasks._record(s, [item], {item_id: "fetched"}, "transcribed")
