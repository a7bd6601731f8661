"""The reconciler: work whose broker message was lost is found in the store and sent again.

The store is the source of truth; messages only say what to run next. A Redis that
restarts without persistence, a send that failed while the broker was down, a message
that ran out of retries while the job store or the vector database was down: each leaves
work in the store that no message will ever run. Embedded mode re-enqueues everything
when the API starts (:meth:`~ragcast.runner.broker.Runner.recover`); the reconciler does
it while processes keep running. It runs in every process that runs workers (the API in
embedded mode, each ``ragcast worker``), started and stopped with the workers:

- every such process writes a heartbeat row (``worker_heartbeats``) naming the items,
  jobs and exports its actors are running now (:class:`ActiveWork`), every
  ``min(reconcile_interval_s, reconcile_stale_s / 3)`` seconds;
- one process at a time, the holder of the ``reconciler`` lease (:mod:`ragcast.store.
  leases`), sweeps every ``reconcile_interval_s``: first a snapshot of the messages the
  broker holds (Redis: every queue's waiting, delayed and unacknowledged messages, read
  in one MULTI; the embedded stub: its queues and its worker's buffers; RabbitMQ cannot
  be read without consuming, so it tells nothing), then the live heartbeats, then the
  store.

Work is *lost* when it made no progress for ``reconcile_stale_s`` (an item's
``updated_at``, which every claim and finished stage moves; a job's or an export's
creation), no live heartbeat names it, the broker (where it can tell) holds no message
naming it, and all of that on two sweeps in a row, so a message caught moving between
queues is never taken for lost. A pending job also waits while its user is at the limit
of active jobs: that is its deferral loop's business.

Lost work is sent again: an item's next stage (its ``updated_at`` moved by a conditional
update first, so two sweeps never both send it), a job's ``start_job``, an export's
``run_export``; a job whose items all finished but which nobody closed is closed here.
Sending again is safe even when the guess is wrong: every stage is idempotent and
checkpointed, claims and stage completions are conditional updates (a second run of a
finished stage does nothing and counts nothing, see :mod:`ragcast.runner.tasks`), and
vectors have deterministic ids.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.orm import Session

from ragcast.context import Context
from ragcast.pipeline.progress import TERMINAL_ITEM
from ragcast.pipeline.stages import ORDER, job_stages
from ragcast.runner import tasks
from ragcast.store import leases
from ragcast.store.models import Export, Item, Job, WorkerHeartbeat, utcnow

log = logging.getLogger(__name__)

#: the lease whose holder sweeps
LEASE = "reconciler"
#: what work is tracked by: items (stage messages), jobs (start_job), exports
KINDS = ("item", "job", "export")
#: lost items sent again per sweep at most (the rest wait for the next sweep)
MAX_ITEMS = 2000
#: heartbeat rows of processes silent this many stale periods are deleted
FORGET_AFTER = 10

#: kind → ids of the work a broker holds messages for
Held = dict[str, set[int]]


class Sends(Protocol):
    """What the reconciler sends through (a :class:`~ragcast.runner.broker.Runner`)."""

    def enqueue_stage(self, item_ids: list[int], stage: str) -> None: ...

    def send_start(self, job_pk: int) -> None: ...

    def send_export(self, export_pk: int) -> None: ...

    def held_messages(self) -> Held | None: ...


class ActiveWork:
    """What this process's actors are running right now, by kind and id."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: Counter[tuple[str, int]] = Counter()

    @contextmanager
    def holding(self, kind: str, ids: Iterable[int]) -> Iterator[None]:
        """Count ``ids`` of ``kind`` as in progress here until the block ends."""
        keys = [(kind, int(i)) for i in ids]
        with self._lock:
            self._held.update(keys)
        try:
            yield
        finally:
            with self._lock:
                self._held.subtract(keys)
                for key in keys:
                    if self._held[key] <= 0:
                        del self._held[key]

    def snapshot(self) -> dict[str, list[int]]:
        """The ids in progress, by kind."""
        with self._lock:
            keys = list(self._held)
        return {kind: sorted(i for k, i in keys if k == kind) for kind in KINDS}


@dataclass
class Sweep:
    """What one sweep sent again (or closed)."""

    items: list[int] = field(default_factory=list)
    jobs: list[int] = field(default_factory=list)
    exports: list[int] = field(default_factory=list)
    closed: list[int] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.items or self.jobs or self.exports or self.closed)


def held_work(messages: Iterable[tuple[str, tuple[Any, ...]]]) -> Held:
    """The work named by ``(actor name, args)`` of broker messages."""
    held: Held = {kind: set() for kind in KINDS}
    for actor, args in messages:
        if not args:
            continue
        if actor == "start_job":
            held["job"].add(int(args[0]))
        elif actor == "run_export":
            held["export"].add(int(args[0]))
        elif actor.startswith("stage_"):
            ids = args[0]
            held["item"].update([int(ids)] if isinstance(ids, int) else map(int, ids))
    return held


class Reconciler:
    """Heartbeats of this process's work, and sweeps while it holds the lease."""

    def __init__(
        self,
        ctx: Context,
        sends: Sends,
        active: ActiveWork,
        *,
        holder: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ctx = ctx
        self.sends = sends
        self.active = active
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_sweep: float | None = None
        #: what the last sweep found lost: acted on when the next one finds it again
        self._suspects: set[tuple[str, int]] = set()
        #: when this process last sent each key again (not again within a stale period)
        self._sent: dict[tuple[str, int], float] = {}

    @property
    def stale_s(self) -> float:
        """Seconds without progress after which work may be lost."""
        return self.ctx.settings.reconcile_stale_s

    @property
    def beat_s(self) -> float:
        """Seconds between two heartbeats: several per stale period."""
        return min(self.ctx.settings.reconcile_interval_s, self.stale_s / 3)

    # -- the loop ---------------------------------------------------------------------
    def start(self) -> None:
        """Beat and sweep from a daemon thread until :meth:`stop`."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="ragcast-reconciler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the loop, give the lease up and remove this process's heartbeat."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        try:
            with self.ctx.db.session() as s:
                s.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.holder == self.holder))
                leases.release(s, LEASE, self.holder)
        except Exception:  # the store may be what is gone; the lease then runs out
            log.warning("reconciler: could not give the lease up", exc_info=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.beat_s):
            self.tick()

    def tick(self) -> Sweep | None:
        """One heartbeat, and a sweep when one is due and this process holds the lease.

        Never raises: a store or broker that is down is what the next tick waits out.
        """
        try:
            self.beat()
        except Exception as exc:
            log.warning("reconciler: heartbeat failed: %s", _short(exc))
        now = self._clock()
        interval = self.ctx.settings.reconcile_interval_s
        if self._last_sweep is not None and now - self._last_sweep < interval:
            return None
        self._last_sweep = now
        try:
            with self.ctx.db.session() as s:
                held = leases.acquire(s, LEASE, self.holder, max(3 * interval, 10.0))
            if not held:
                self._suspects.clear()
                return None
            return self.sweep()
        except Exception as exc:
            log.warning("reconciler: sweep failed, trying again: %s", _short(exc))
            return None

    def beat(self) -> None:
        """Write this process's heartbeat: the work its actors are running now."""
        work: dict[str, Any] = dict(self.active.snapshot())
        with self.ctx.db.session() as s:
            beat = s.get(WorkerHeartbeat, self.holder)
            if beat is None:
                s.add(WorkerHeartbeat(holder=self.holder, beat_at=utcnow(), work=work))
            else:
                beat.beat_at = utcnow()
                beat.work = work

    # -- the sweep --------------------------------------------------------------------
    def sweep(self) -> Sweep:
        """Find lost work and send it again; returns what was sent (or closed)."""
        # The broker first: work whose message it holds now was not lost before now, and
        # anything sent after this snapshot moves the work's progress mark or heartbeat.
        held = self.sends.held_messages()
        now = utcnow()
        cutoff = now - timedelta(seconds=self.stale_s)
        with self.ctx.db.session() as s:
            busy = _busy(s, cutoff)
            s.execute(
                delete(WorkerHeartbeat).where(
                    WorkerHeartbeat.beat_at < now - timedelta(seconds=FORGET_AFTER * self.stale_s)
                )
            )

        def free(kind: str, ids: Iterable[int]) -> set[tuple[str, int]]:
            return {
                (kind, i)
                for i in ids
                if i not in busy[kind] and (held is None or i not in held[kind])
            }

        with self.ctx.db.session() as s:
            found = (
                free("item", _stale_items(s, cutoff))
                | free("job", _unstarted_jobs(self.ctx, s, cutoff))
                | free("export", _stale_exports(s, cutoff))
            )
            unclosed = free("job", _unclosed_jobs(s, cutoff))
        found |= {("close", i) for _, i in unclosed}
        lost = found & self._suspects
        self._suspects = found - lost
        clock = self._clock()
        self._sent = {k: t for k, t in self._sent.items() if clock - t < self.stale_s}
        lost = {k for k in lost if k not in self._sent}
        done = self._resend(lost, cutoff)
        for kind, ids in (("item", done.items), ("job", done.jobs), ("export", done.exports)):
            self._sent.update(dict.fromkeys(((kind, i) for i in ids), clock))
        if done:
            log.warning(
                "reconciler: lost work sent again: %d items, %d jobs, %d exports; %d jobs closed",
                len(done.items),
                len(done.jobs),
                len(done.exports),
                len(done.closed),
            )
        return done

    def _resend(self, lost: set[tuple[str, int]], cutoff: Any) -> Sweep:
        done = Sweep()
        items = sorted(i for kind, i in lost if kind == "item")
        if items:
            done.items = self._resend_items(items, cutoff)
        for job_pk in sorted(i for kind, i in lost if kind == "job"):
            self.sends.send_start(job_pk)
            done.jobs.append(job_pk)
        for export_pk in sorted(i for kind, i in lost if kind == "export"):
            self.sends.send_export(export_pk)
            done.exports.append(export_pk)
        for job_pk in sorted(i for kind, i in lost if kind == "close"):
            tasks.close_job(self.ctx, job_pk)
            done.closed.append(job_pk)
        return done

    def _resend_items(self, item_ids: list[int], cutoff: Any) -> list[int]:
        """Send the next stage of lost items; each is taken by a conditional update of its
        progress mark first, so no other sweep sends it too."""
        with self.ctx.db.session() as s:
            taken = set(
                s.scalars(
                    update(Item)
                    .where(
                        Item.id.in_(item_ids),
                        Item.updated_at < cutoff,
                        Item.status.not_in(TERMINAL_ITEM),
                    )
                    .values(updated_at=utcnow())
                    .returning(Item.id)
                    .execution_options(synchronize_session=False)
                )
            )
            if not taken:
                return []
            rows = s.execute(
                select(Item.id, Item.job_pk, Item.stage, Item.source_type, Item.content_type)
                .where(Item.id.in_(taken))
                .order_by(Item.job_pk, Item.index)
            ).all()
            plans = {
                job.id: job_stages(job)
                for job in s.scalars(select(Job).where(Job.id.in_({r.job_pk for r in rows})))
            }
        steps = [
            (r.id, tasks.next_stage(r.stage, plans[r.job_pk]) or ORDER[-1], r.source_type,
             r.content_type)
            for r in rows
        ]  # fmt: skip
        tasks.dispatch(steps, self.sends.enqueue_stage, self.ctx.settings.batch_items)
        return [r.id for r in rows]


def _busy(s: Session, cutoff: Any) -> Held:
    """The work live processes' heartbeats say they are running."""
    busy: Held = {kind: set() for kind in KINDS}
    for work in s.scalars(select(WorkerHeartbeat.work).where(WorkerHeartbeat.beat_at >= cutoff)):
        for kind in KINDS:
            busy[kind].update(int(i) for i in (work or {}).get(kind, ()))
    return busy


def _stale_items(s: Session, cutoff: Any) -> list[int]:
    """Unfinished items of running (or cancelling) jobs that made no progress since
    ``cutoff``."""
    return list(
        s.scalars(
            select(Item.id)
            .join(Job, Job.id == Item.job_pk)
            .where(
                Job.finished_at.is_(None),
                Job.status.in_(("processing", "cancelled")),
                Item.status.not_in(TERMINAL_ITEM),
                Item.updated_at < cutoff,
            )
            .order_by(Item.id)
            .limit(MAX_ITEMS)
        )
    )


def _unstarted_jobs(ctx: Context, s: Session, cutoff: Any) -> list[int]:
    """Jobs created before ``cutoff`` that never got to ``processing``, except pending
    jobs whose user is at the limit of active jobs (their deferral loop waits)."""
    rows = s.execute(
        select(Job.id, Job.status, Job.user_id).where(
            Job.finished_at.is_(None),
            Job.status.in_(("pending", "initializing")),
            Job.created_at < cutoff,
        )
    ).all()
    limit = ctx.settings.max_active_jobs_per_user
    waiting = {r.user_id for r in rows if r.status == "pending"}
    full: set[int] = set()
    if limit > 0 and waiting:
        active = s.execute(
            select(Job.user_id, func.count(Job.id))
            .where(
                Job.user_id.in_(waiting),
                Job.status.in_(("initializing", "processing")),
                Job.finished_at.is_(None),
            )
            .group_by(Job.user_id)
        ).all()
        full = {user for user, n in active if int(n) >= limit}
    return [r.id for r in rows if not (r.status == "pending" and r.user_id in full)]


def _unclosed_jobs(s: Session, cutoff: Any) -> list[int]:
    """Running jobs started before ``cutoff`` whose items are all finished."""
    unfinished = exists().where(Item.job_pk == Job.id, Item.status.not_in(TERMINAL_ITEM))
    return list(
        s.scalars(
            select(Job.id).where(
                Job.finished_at.is_(None),
                Job.status.in_(("processing", "cancelled")),
                func.coalesce(Job.started_at, Job.created_at) < cutoff,
                ~unfinished,
            )
        )
    )


def _stale_exports(s: Session, cutoff: Any) -> list[int]:
    """Unfinished exports created before ``cutoff``."""
    return list(
        s.scalars(
            select(Export.id).where(
                Export.status.in_(("pending", "processing")), Export.created_at < cutoff
            )
        )
    )


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
