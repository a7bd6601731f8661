"""Subscriptions: a channel kept indexed by a run every ``interval_s`` seconds.

A run is an ordinary channel job, ``{subscription_id}-{run}``, made and checked exactly as
``POST /process`` makes a channel job (its functions are used here). Resolving a channel
job skips the items the user has indexed before (:mod:`ragcast.pipeline.resolve`), so a
run processes only what is new on the channel.

The :class:`Scheduler` runs in every process that runs pipeline workers (the API in
embedded mode, each ``ragcast worker``); only the holder of the ``subscriptions`` lease
starts runs. Each run is claimed with one conditional UPDATE that moves ``next_run_at``
on, so even two schedulers that both believed they held the lease could not start one
run twice. When a run's job has finished, its result is recorded once in
``last_result`` and ``subscription.synced`` is queued in the same transaction.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import null, select, update
from sqlalchemy.orm import Session

from ragcast.context import Context
from ragcast.errors import RagcastError
from ragcast.notify.outbox import enqueue_event
from ragcast.pipeline.progress import job_result
from ragcast.pipeline.submission import (
    check_backends,
    check_inputs,
    check_language,
    check_sources,
    request_hash,
    stored_request,
)
from ragcast.providers.embedders.base import EmbeddingSpec
from ragcast.spec import JobCreate
from ragcast.store import leases
from ragcast.store.models import Job, Subscription, as_utc, iso_utc, utcnow

log = logging.getLogger(__name__)

#: the lease whose holder starts the due runs
LEASE = "subscriptions"
#: subscriptions looked at per tick at most (the rest wait for the next tick)
BATCH = 50

#: send(job_pk): enqueue a job's start (``Runner.start_job.send``)
Send = Callable[[int], object]


def new_subscription_id() -> str:
    """A fresh public id, ``sub_`` and 16 URL-safe characters."""
    return f"sub_{secrets.token_urlsafe(12)}"


def run_body(job_id: str, platform: str, channel_url: str, request: dict[str, Any]) -> JobCreate:
    """The ``POST /process`` body of a run: a channel job with the subscription's options.

    ``settings.force`` is dropped: a run must skip what is indexed already.
    """
    settings = {k: v for k, v in (request.get("settings") or {}).items() if k != "force"}
    return JobCreate.model_validate(
        {
            "job_id": job_id,
            "platform": platform,
            "input_method": "channel",
            "channel_url": channel_url,
            "embedding_model": request["embedding_model"],
            "vector_db": request["vector_db"],
            "settings": settings,
        }
    )


def validate(ctx: Context, body: JobCreate) -> tuple[EmbeddingSpec, str, str]:
    """Every check ``POST /process`` makes of a channel job (inputs, language, the
    channel URL's safety and platform, backends); returns spec, vector db, collection."""
    check_inputs(body)
    check_language(body, ctx.settings)
    check_sources(body, ctx.settings)
    return check_backends(ctx, body)


def new_job(ctx: Context, user_id: int, body: JobCreate) -> Job:
    """The job row of ``body`` as ``POST /process`` records it; the listing adds its items."""
    spec, vector_db, collection = validate(ctx, body)
    return Job(
        job_id=body.job_id,
        user_id=user_id,
        request_hash=request_hash(body),
        request=stored_request(body, spec),
        platform=body.platform,
        input_method=body.input_method,
        embedding_model=spec.id,
        dimensions=spec.dimensions,
        vector_db=vector_db,
        collection=collection,
        total_content=0,
        stage="Queued",
        items=[],
    )


def _run_job_id(s: Session, sub: Subscription, run: int) -> str:
    """``{subscription_id}-{run}``, made unique should the user have taken that job id."""
    job_id = f"{sub.subscription_id}-{run}"
    taken = s.scalar(select(Job.id).where(Job.user_id == sub.user_id, Job.job_id == job_id))
    return job_id if taken is None else f"{job_id}-{secrets.token_hex(3)}"


def _is_due(sub: Subscription, now: datetime) -> bool:
    """Whether ``sub`` is active and its next run is not in the future."""
    return sub.status == "active" and sub.next_run_at is not None and as_utc(sub.next_run_at) <= now


def _make_job(ctx: Context, sub: Subscription, job_id: str) -> tuple[Job | None, str | None]:
    """The run's job, or None and why it cannot be made (a backend gone since, ...)."""
    try:
        body = run_body(job_id, sub.platform, sub.channel_url, sub.request)
        return new_job(ctx, sub.user_id, body), None
    except RagcastError as exc:
        return None, exc.message
    except Exception as exc:  # a backend that cannot be reached: this run is skipped
        log.exception("subscription %s: the run's job could not be made", sub.subscription_id)
        return None, f"the run's job could not be made: {type(exc).__name__}"


def synced_data(sub: Subscription, result: dict[str, Any]) -> dict[str, Any]:
    """The ``data`` of a ``subscription.synced`` event."""
    return {
        "subscription_id": sub.subscription_id,
        "platform": sub.platform,
        "channel_url": sub.channel_url,
        **result,
    }


def start_run(
    ctx: Context, subscription_pk: int, send: Send, *, due_only: bool = True
) -> str | None:
    """Start a run of a subscription; returns its job id, or None when none was started.

    Runs never overlap, due or started by hand (``due_only`` off): none starts while the
    last run's job is going. The run is claimed by one conditional UPDATE on ``runs``
    (and, unless ``due_only`` is off, on being active and due) that also moves
    ``next_run_at`` one interval on, so of two callers that both found no run going only
    one starts it; the job is created in the same transaction and enqueued once it is
    committed. A run whose job cannot be made is recorded as failed in ``last_result``.
    """
    now = utcnow()
    with ctx.db.session() as s:
        sub = s.get(Subscription, subscription_pk)
        if sub is None or (due_only and not _is_due(sub, now)):
            return None
        if run_going(s, sub) is not None:
            return None  # the next run starts once the last one is done
        run = sub.runs + 1
        job, error = _make_job(ctx, sub, _run_job_id(s, sub, run))
        failed = {"run": run, "job_id": None, "status": "failed", "error": error}
        claim = update(Subscription).where(Subscription.id == sub.id, Subscription.runs == sub.runs)
        if due_only:
            claim = claim.where(Subscription.status == "active", Subscription.next_run_at <= now)
        claimed = s.execute(
            claim.values(
                runs=run,
                next_run_at=now + timedelta(seconds=sub.interval_s),
                last_run_at=now,
                last_job_id=job.job_id if job is not None else None,
                last_result=null() if job is not None else failed,
            ).execution_options(synchronize_session=False)
        )
        if not claimed.rowcount:  # type: ignore[attr-defined]
            s.rollback()
            return None  # another scheduler (or a run-now) claimed this run
        if job is None:
            enqueue_event(s, sub.user_id, "subscription.synced", synced_data(sub, failed))
            return None
        s.add(job)
        s.flush()
        job_pk, job_id = job.id, job.job_id
    send(job_pk)
    return job_id


def run_going(s: Session, sub: Subscription) -> str | None:
    """The job id of the subscription's last run while that job has not finished, else None."""
    if sub.last_job_id is None:
        return None
    going = s.scalar(
        select(Job.job_id).where(
            Job.user_id == sub.user_id,
            Job.job_id == sub.last_job_id,
            Job.finished_at.is_(None),
        )
    )
    return going


def run_due(ctx: Context, send: Send, keep: Callable[[], bool] = lambda: True) -> list[str]:
    """Start every due subscription (while ``keep()`` says so); returns the job ids."""
    with ctx.db.session() as s:
        due = list(
            s.scalars(
                select(Subscription.id)
                .where(Subscription.status == "active", Subscription.next_run_at <= utcnow())
                .order_by(Subscription.next_run_at)
                .limit(BATCH)
            )
        )
    started: list[str] = []
    for pk in due:
        if not keep():
            break
        try:
            job_id = start_run(ctx, pk, send)
        except Exception:
            log.exception("starting a run of subscription %d failed", pk)
            continue
        if job_id is not None:
            started.append(job_id)
    return started


def run_result(job: Job) -> dict[str, Any]:
    """What a finished run records: its job, the job's status and totals."""
    finished = iso_utc(job.finished_at)
    return {"job_id": job.job_id, "status": job.status, **job_result(job), "finished_at": finished}


def record_results(ctx: Context) -> int:
    """Record the result of each run whose job has finished, once, with its
    ``subscription.synced`` event in the same transaction; returns how many."""
    recorded = 0
    with ctx.db.session() as s:
        rows = s.execute(
            select(Subscription, Job)
            .join(
                Job,
                (Job.user_id == Subscription.user_id) & (Job.job_id == Subscription.last_job_id),
            )
            .where(Subscription.last_result.is_(None), Job.finished_at.is_not(None))
            .limit(BATCH)
        ).all()
        for sub, job in rows:
            result = {"run": sub.runs, **run_result(job)}
            done = s.execute(
                update(Subscription)
                .where(
                    Subscription.id == sub.id,
                    Subscription.last_job_id == job.job_id,
                    Subscription.last_result.is_(None),
                )
                .values(last_result=result)
                .execution_options(synchronize_session=False)
            )
            if done.rowcount:  # type: ignore[attr-defined]
                enqueue_event(s, sub.user_id, "subscription.synced", synced_data(sub, result))
                recorded += 1
    return recorded


class Scheduler:
    """Starts due runs and records finished ones, from a background thread, while this
    process holds the ``subscriptions`` lease (renewed every tick)."""

    def __init__(self, ctx: Context, send: Send, *, holder: str | None = None) -> None:
        self.ctx = ctx
        self.send = send
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._renewed: float | None = None

    @property
    def holds_lease(self) -> bool:
        """Whether the last look at the lease found it held by this scheduler."""
        return self._renewed is not None

    def _renew(self) -> bool:
        """Take or renew the lease; True while this scheduler holds it."""
        ttl = self.ctx.settings.subscription_lease_ttl_s
        with self.ctx.db.session() as s:
            held = leases.acquire(s, LEASE, self.holder, ttl)
        self._renewed = time.monotonic() if held else None
        return held

    def _keep(self) -> bool:
        """Between two runs: go on unless stopping; renew the lease when half spent."""
        if self._stop.is_set() or self.ctx.stopping.is_set() or self._renewed is None:
            return False
        if time.monotonic() - self._renewed > self.ctx.settings.subscription_lease_ttl_s / 2:
            return self._renew()
        return True

    def tick(self) -> list[str]:
        """One look: take or renew the lease, start the due runs, record finished ones."""
        if not self._renew():
            return []
        started = run_due(self.ctx, self.send, self._keep)
        if self._keep():
            record_results(self.ctx)
        return started

    def _loop(self) -> None:
        """Tick until stopped; a failed tick is logged and the next one tries again."""
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:
                log.exception("subscription scheduler: the tick failed; trying again")
            self._stop.wait(self.ctx.settings.subscription_tick_s)

    def start(self) -> None:
        """Run the loop in a daemon thread until :meth:`stop`."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._loop, name="ragcast-subscriptions", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 60.0) -> None:
        """Stop the loop (a run being started is finished first) and give the lease up."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._renewed is None:
            return
        self._renewed = None
        try:
            with self.ctx.db.session() as s:
                leases.release(s, LEASE, self.holder)
        except Exception:  # it runs out by itself
            log.warning("subscription scheduler: could not give the lease up", exc_info=True)
