"""The sender: threads that claim due outbox rows, POST them signed, and record the answer.

A row is claimed with a conditional UPDATE of ``claimed_until``, so of several senders
(threads of one process, API processes, ``ragcast worker`` processes on one store) only
one sends it at a time. A 2xx answer marks it ``delivered``; anything else schedules the
next try after the next delay of the retry schedule, and ``failed`` once it is spent.
A process that dies mid-send leaves the claim to expire, and the row is sent again with
the same ``webhook-id``, by which receivers recognise a repeat.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import ColumnElement, or_, select, update

from ragcast.context import Context
from ragcast.errors import RagcastError, ValidationError
from ragcast.notify.signing import signed_headers
from ragcast.sources.safety import check_url, guarded
from ragcast.store.models import Webhook, WebhookDelivery, utcnow

log = logging.getLogger(__name__)

#: rows looked at per claim; senders racing for the first fall through to the next
CANDIDATES = 8
#: a claim outlives the request timeout by this much (then a dead sender's row frees up)
CLAIM_MARGIN_S = 30.0


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


class WebhookSender:
    """Delivers the outbox in background threads until :meth:`stop`.

    Each argument left None comes from the settings (``RAGCAST_WEBHOOK_*``).
    """

    def __init__(
        self,
        ctx: Context,
        *,
        poll_interval_s: float | None = None,
        retry_schedule_s: Sequence[float] | None = None,
        timeout_s: float | None = None,
        threads: int | None = None,
    ) -> None:
        settings = ctx.settings
        self.ctx = ctx
        self.poll_interval_s = poll_interval_s or settings.webhook_poll_interval_s
        self.retry_schedule_s = tuple(
            settings.webhook_retry_schedule_s if retry_schedule_s is None else retry_schedule_s
        )
        self.timeout_s = timeout_s or settings.webhook_timeout_s
        self.threads = threads or settings.webhook_sender_threads
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []

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
        """Stop the threads; a POST in flight finishes (bounded by the timeout) and is kept."""
        self._stop.set()
        for thread in self._workers:
            # Bounded: a receiver trickling its answer must not hold the shutdown forever.
            thread.join(timeout=self.timeout_s * 2 + 5)
            if thread.is_alive():
                log.warning("webhook sender %s still sending at shutdown", thread.name)
        self._workers.clear()

    def _loop(self) -> None:
        with httpx.Client(
            timeout=self.timeout_s, follow_redirects=False, trust_env=False
        ) as client:
            while not self._stop.is_set():
                try:
                    sent = self.send_next(client)
                except Exception:  # a store outage must not end the thread: retry later
                    log.exception("webhook sender failed; retrying")
                    sent = False
                if not sent:
                    self._stop.wait(self.poll_interval_s)

    def send_next(self, client: httpx.Client) -> bool:
        """Claim one due delivery, send it and record the outcome; False when none is due."""
        claim = self.claim()
        if claim is None:
            return False
        self.record(claim, self.post(client, claim))
        return True

    def claim(self) -> Claim | None:
        """Take the next due delivery, or None; no other sender gets it until it is recorded."""
        now = utcnow()
        with self.ctx.db.session() as s:
            pks = s.scalars(
                select(WebhookDelivery.id)
                .where(*_due(now))
                .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
                .limit(CANDIDATES)
            ).all()
        until = now + timedelta(seconds=self.timeout_s + CLAIM_MARGIN_S)
        for pk in pks:
            with self.ctx.db.session() as s:
                taken = s.execute(
                    update(WebhookDelivery)
                    .where(WebhookDelivery.id == pk, *_due(now))
                    .values(claimed_until=until)
                    .execution_options(synchronize_session=False)
                )
                if not getattr(taken, "rowcount", 0):
                    continue  # another sender was first
                row = s.get(WebhookDelivery, pk)
                hook = s.get(Webhook, row.webhook_pk) if row is not None else None
                if row is None or hook is None:
                    continue  # the webhook was deleted meanwhile (its rows with it)
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
        return None

    def post(self, client: httpx.Client, claim: Claim) -> Attempt:
        """POST one signed delivery; the address rules are checked again at connect time."""
        body = json.dumps(claim.payload, separators=(",", ":")).encode()
        headers = signed_headers(claim.secret, claim.message_id, int(time.time()), body)
        allow_loopback = self.ctx.settings.allow_loopback_fetch
        started = time.perf_counter()
        code: int | None = None
        error: str | None = None
        try:
            # The URL was checked when the webhook was made, but DNS may have changed since:
            # check it again, and refuse any connection to a forbidden address (rebinding).
            check_url(claim.url, field="url", allow_loopback=allow_loopback)
            with guarded(allow_loopback=allow_loopback):
                # Streamed and never read: only the status matters, whatever the body size.
                with client.stream("POST", claim.url, content=body, headers=headers) as r:
                    code = r.status_code
            if not 200 <= code < 300:
                error = f"HTTP {code}"
        except ValidationError as exc:
            error = f"refused: {exc.issue}"
        except httpx.TimeoutException:
            error = f"timed out after {self.timeout_s:g} s"
        except RagcastError as exc:
            error = exc.message  # the connection guard refused the address
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        return Attempt(code, error, round((time.perf_counter() - started) * 1000))

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
