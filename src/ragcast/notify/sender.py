"""The sender: threads that claim due outbox rows, POST them signed, and record the answer.

A row is claimed with a conditional UPDATE of ``claimed_until``, so of several senders
(threads of one process, API processes, ``ragcast worker`` processes on one store) only
one sends it at a time. A 2xx answer marks it ``delivered``; anything else schedules the
next try after the next delay of the retry schedule, and ``failed`` once it is spent.
A process that dies mid-send leaves the claim to expire, and the row is sent again with
the same ``webhook-id``, by which receivers recognise a repeat.

Delivery is fair between users and endpoints. A claim never takes a row of an
*endpoint* (``scheme://host:port``) that has an attempt in flight, nor of a user who has
``webhook_max_in_flight_per_user`` attempts in flight; of the rest it takes the user with
the fewest attempts in flight, then the one served least recently, then that user's
webhook served least recently, then that webhook's oldest due row. The choice is made
per webhook in SQL (a webhook with 10,000 due rows is one candidate, like a webhook with
one), and claims are made one at a time across every process: each claim's transaction
first updates the :data:`CLAIM_LOCK` row of ``leases`` (PostgreSQL's row lock, SQLite's
write lock), so what it counts in flight cannot change under it. In flight means claimed
and not expired, so a dead sender's endpoint stays held until its claim runs out.

Each attempt has one overall deadline (``webhook_timeout_s``): the address check, DNS,
connect, sending and the answer's headers, in all. It runs on the sender thread's own
event loop under ``asyncio.timeout``, so a receiver trickling its answer a byte at a
time is cut at the deadline; the connection guard (thread-local) stays in force, since
every connection is made from that loop, in the sender's thread.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import httpx
from sqlalchemy import ColumnElement, case, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ragcast.context import Context
from ragcast.errors import RagcastError, ValidationError
from ragcast.notify.signing import signed_headers
from ragcast.sources.safety import check_url, guarded
from ragcast.store.models import Lease, Webhook, WebhookDelivery, utcnow

log = logging.getLogger(__name__)

#: a claim outlives the attempt's deadline by this much (then a dead sender's row frees up)
CLAIM_MARGIN_S = 30.0
#: the ``leases`` row each claim locks first, so claims are made one at a time
CLAIM_LOCK = "webhook-claims"


@dataclass(frozen=True)
class Claim:
    """A delivery this sender holds until ``until``, with what sending it needs."""

    pk: int
    until: datetime
    message_id: str
    url: str
    secret: str
    payload: dict[str, Any]
    attempts: int
    log: list[dict[str, Any]]


@dataclass(frozen=True)
class Attempt:
    """The outcome of one POST."""

    status_code: int | None
    error: str | None
    duration_ms: int

    @property
    def ok(self) -> bool:
        """Whether the receiver took it (any 2xx)."""
        return self.status_code is not None and 200 <= self.status_code < 300


def _due(now: datetime) -> list[ColumnElement[bool]]:
    """Conditions of a row that may be claimed now."""
    d = WebhookDelivery
    return [
        d.status == "pending",
        d.next_attempt_at <= now,
        or_(d.claimed_until.is_(None), d.claimed_until < now),
    ]


def in_flight(s: Session, now: datetime) -> list[tuple[int, str]]:
    """``(user_id, endpoint)`` of every attempt in flight: claimed, the claim not expired."""
    rows = s.execute(
        select(Webhook.user_id, Webhook.endpoint)
        .join(WebhookDelivery, WebhookDelivery.webhook_pk == Webhook.id)
        .where(WebhookDelivery.status == "pending", WebhookDelivery.claimed_until >= now)
    ).all()
    return [(int(user), str(endpoint)) for user, endpoint in rows]


def next_webhook(s: Session, now: datetime, *, per_user: int) -> int | None:
    """The webhook whose oldest due row is to be sent next, by the rules of the module
    docstring; None when every due row waits for its endpoint or its user."""
    flying = in_flight(s, now)
    busy_endpoints = {endpoint for _, endpoint in flying}
    busy_users: dict[int, int] = {}
    for user, _ in flying:
        busy_users[user] = busy_users.get(user, 0) + 1
    w = Webhook
    served = select(w.user_id, func.max(w.served_at).label("served")).group_by(w.user_id).subquery()
    has_due = select(WebhookDelivery.id).where(WebhookDelivery.webhook_pk == w.id, *_due(now))
    query = select(w.id).join(served, served.c.user_id == w.user_id).where(has_due.exists())
    if busy_endpoints:
        query = query.where(w.endpoint.not_in(sorted(busy_endpoints)))
    full = sorted(user for user, n in busy_users.items() if n >= per_user)
    if full:
        query = query.where(w.user_id.not_in(full))
    if busy_users:
        query = query.order_by(case(busy_users, value=w.user_id, else_=0))
    query = query.order_by(
        served.c.served.asc().nulls_first(), w.served_at.asc().nulls_first(), w.id
    )
    return s.scalar(query.limit(1))


def _refusal(group: BaseExceptionGroup[BaseException]) -> str | None:
    """The message of the first ragcast error inside ``group`` (the connection guard's,
    raised inside anyio's happy-eyeballs task group), or None."""
    for exc in group.exceptions:
        if isinstance(exc, RagcastError):
            return exc.message
        if isinstance(exc, BaseExceptionGroup):
            found = _refusal(exc)
            if found is not None:
                return found
    return None


class WebhookSender:
    """Delivers the outbox in background threads until :meth:`stop`.

    Each argument left None comes from the settings (``RAGCAST_WEBHOOK_*``);
    ``timeout_s`` is the overall deadline of one attempt.
    """

    def __init__(
        self,
        ctx: Context,
        *,
        poll_interval_s: float | None = None,
        retry_schedule_s: Sequence[float] | None = None,
        timeout_s: float | None = None,
        threads: int | None = None,
        max_in_flight_per_user: int | None = None,
    ) -> None:
        settings = ctx.settings
        self.ctx = ctx
        self.poll_interval_s = poll_interval_s or settings.webhook_poll_interval_s
        self.retry_schedule_s = tuple(
            settings.webhook_retry_schedule_s if retry_schedule_s is None else retry_schedule_s
        )
        self.timeout_s = timeout_s or settings.webhook_timeout_s
        self.threads = threads or settings.webhook_sender_threads
        self.max_in_flight_per_user = (
            max_in_flight_per_user or settings.webhook_max_in_flight_per_user
        )
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []
        self._ssl: ssl.SSLContext | None = None

    def start(self) -> None:
        """Start the sender threads (once)."""
        if self._workers:
            return
        self._stop.clear()
        for n in range(self.threads):
            thread = threading.Thread(target=self._loop, name=f"ragcast-webhooks-{n}", daemon=True)
            thread.start()
            self._workers.append(thread)

    def stop(self) -> None:
        """Stop the threads; a POST in flight finishes (within its deadline) and is kept."""
        self._stop.set()
        for thread in self._workers:
            thread.join(timeout=self.timeout_s + 5)
            if thread.is_alive():
                log.warning("webhook sender %s still sending at shutdown", thread.name)
        self._workers.clear()

    def _loop(self) -> None:
        # One event loop per thread, for the thread's life: the attempts run on it.
        with asyncio.Runner() as runner:
            while not self._stop.is_set():
                try:
                    sent = self.send_next(runner)
                except Exception:  # a store outage must not end the thread: retry later
                    log.exception("webhook sender failed; retrying")
                    sent = False
                if not sent:
                    self._stop.wait(self.poll_interval_s)

    def send_next(self, runner: asyncio.Runner | None = None) -> bool:
        """Claim one due delivery, send it and record the outcome; False when none is due."""
        claim = self.claim()
        if claim is None:
            return False
        self.record(claim, self.post(runner, claim))
        return True

    def _lock_claims(self, s: Session, now: datetime) -> None:
        """Take the claim lock for the rest of ``s``'s transaction (made on first use)."""
        lock = update(Lease).where(Lease.name == CLAIM_LOCK).values(expires_at=now)
        if getattr(s.execute(lock), "rowcount", 0):
            return
        s.rollback()  # SQLite: the empty UPDATE holds the write lock the insert needs
        try:
            with self.ctx.db.session() as other:
                other.add(Lease(name=CLAIM_LOCK, holder="webhook senders", expires_at=now))
        except IntegrityError:  # another sender made it first
            log.debug("the webhook claim lock exists already", exc_info=True)
        s.execute(lock)

    def claim(self) -> Claim | None:
        """Take the next due delivery, or None; no other sender gets it until it is recorded."""
        now = utcnow()
        until = now + timedelta(seconds=self.timeout_s + CLAIM_MARGIN_S)
        with self.ctx.db.session() as s:
            # A read first: an idle sender polls without taking the (write) lock.
            if s.scalar(select(WebhookDelivery.id).where(*_due(now)).limit(1)) is None:
                return None
        with self.ctx.db.session() as s:
            self._lock_claims(s, now)
            hook_pk = next_webhook(s, now, per_user=self.max_in_flight_per_user)
            if hook_pk is None:
                return None
            pk = s.scalar(
                select(WebhookDelivery.id)
                .where(WebhookDelivery.webhook_pk == hook_pk, *_due(now))
                .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
                .limit(1)
            )
            if pk is None:
                return None
            # The webhook's row before the delivery's, in the order a delete cascades.
            s.execute(
                update(Webhook)
                .where(Webhook.id == hook_pk)
                .values(served_at=now)
                .execution_options(synchronize_session=False)
            )
            taken = s.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id == pk, *_due(now))
                .values(claimed_until=until)
                .execution_options(synchronize_session=False)
            )
            if not getattr(taken, "rowcount", 0):
                return None  # a sender of an older release, which takes no lock, was first
            row = s.get(WebhookDelivery, pk)
            hook = s.get(Webhook, hook_pk)
            if row is None or hook is None:
                return None
            return Claim(
                pk=pk,
                until=until,
                message_id=row.message_id,
                url=hook.url,
                secret=hook.secret,
                payload=dict(row.payload),
                attempts=row.attempts,
                log=list(row.log or []),
            )

    def post(self, runner: asyncio.Runner | object, claim: Claim) -> Attempt:
        """POST one signed delivery within the overall deadline; the address rules are
        checked again, and at connect time.

        ``runner`` is the sender thread's event loop; anything else (a caller of the older
        API passing an ``httpx.Client``) gets a loop of its own for this attempt.
        """
        if not isinstance(runner, asyncio.Runner):
            with asyncio.Runner() as own:
                return self.post(own, claim)
        body = json.dumps(claim.payload, separators=(",", ":")).encode()
        headers = signed_headers(claim.secret, claim.message_id, int(time.time()), body)
        allow_loopback = self.ctx.settings.allow_loopback_fetch
        started = time.perf_counter()
        code: int | None = None
        error: str | None = None
        try:
            with guarded(allow_loopback=allow_loopback):
                code = runner.run(self._attempt(claim.url, body, headers))
            if not 200 <= code < 300:
                error = f"HTTP {code}"
        except ValidationError as exc:
            error = f"refused: {exc.issue}"
        except (TimeoutError, httpx.TimeoutException):
            error = f"no answer within the deadline of {self.timeout_s:g} s"
        except RagcastError as exc:
            error = exc.message  # the connection guard refused the address
        except BaseExceptionGroup as group:
            error = _refusal(group) or f"{type(group).__name__}: {group}"[:500]
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        return Attempt(code, error, round((time.perf_counter() - started) * 1000))

    async def _attempt(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        """The status code of one POST, everything under one ``asyncio.timeout``."""
        allow_loopback = self.ctx.settings.allow_loopback_fetch
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self.timeout_s):
            # The URL was checked when the webhook was made, but DNS may have changed since:
            # check it again (the guard refuses any connection to a forbidden address too).
            check = partial(check_url, url, field="url", allow_loopback=allow_loopback)
            await loop.run_in_executor(None, check)
            # A client per attempt, without keep-alive: every attempt connects anew, under
            # the guard, and no connection outlives its attempt's deadline.
            async with httpx.AsyncClient(
                timeout=self.timeout_s,
                follow_redirects=False,
                trust_env=False,
                verify=self._ssl_context(),
                limits=httpx.Limits(max_keepalive_connections=0),
            ) as client:
                # Streamed and never read: only the status matters, whatever the body size.
                async with client.stream("POST", url, content=body, headers=headers) as r:
                    return r.status_code

    def _ssl_context(self) -> ssl.SSLContext:
        """One TLS context for every attempt (loading the CA bundle is the slow part)."""
        if self._ssl is None:
            self._ssl = httpx.create_ssl_context()
        return self._ssl

    def record(self, claim: Claim, attempt: Attempt) -> None:
        """Store the outcome of an attempt and release the claim."""
        now = utcnow()
        attempts = claim.attempts + 1
        entry = {
            "at": now.isoformat(),
            "status_code": attempt.status_code,
            "error": attempt.error,
            "duration_ms": attempt.duration_ms,
        }
        values: dict[str, Any] = {
            "attempts": attempts,
            "last_status_code": attempt.status_code,
            "last_error": attempt.error,
            "claimed_until": None,
            "log": [*claim.log, entry],
            "next_attempt_at": None,
        }
        if attempt.ok:
            values.update(status="delivered", delivered_at=now)
        elif attempts <= len(self.retry_schedule_s):
            delay = self.retry_schedule_s[attempts - 1]
            values["next_attempt_at"] = now + timedelta(seconds=delay)
        else:
            values["status"] = "failed"
        with self.ctx.db.session() as s:
            # Only while the claim is still ours: past it another sender owns the row.
            s.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id == claim.pk, WebhookDelivery.claimed_until == claim.until)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
        log.info(
            "webhook %s attempt %d: %s",
            claim.message_id,
            attempts,
            "delivered" if attempt.ok else attempt.error,
        )
