"""Fair webhook delivery over real sockets: a ragcast server on a port, local receivers
that answer slowly, quickly or a byte at a time, and the limits on webhooks per user."""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic import command
from alembic.config import Config
from fastapi import FastAPI
from sqlalchemy import select as sql_select
from sqlalchemy import text

from ragcast.api.app import create_app
from ragcast.auth import create_key
from ragcast.context import Context
from ragcast.notify.outbox import enqueue_event
from ragcast.notify.sender import WebhookSender
from ragcast.runner.boot import build_context
from ragcast.settings import Settings
from ragcast.store.db import MIGRATIONS, make_engine
from ragcast.store.models import User, endpoint_of
from tests.conftest import PREFIX, fresh_postgres, make_settings, uvicorn_in_thread

#: the overall deadline of one attempt in these tests
DEADLINE_S = 1.5
#: senders that look often, retry soon, and may reach the local receivers
FAIR: dict[str, Any] = {
    "allow_loopback_fetch": True,
    "webhook_poll_interval_s": 0.05,
    "webhook_retry_schedule_s": (0.2, 0.2, 0.2),
    "webhook_timeout_s": DEADLINE_S,
    "webhook_sender_threads": 4,
    "webhook_max_in_flight_per_user": 2,
    "rate_limit_read": "10000/hour",
}


@dataclass
class Live:
    """A ragcast server on a port: its API base URL, the users' keys, its app."""

    url: str
    keys: dict[str, str]
    app: FastAPI

    @property
    def ctx(self) -> Context:
        """The server's context (its store)."""
        ctx: Context = self.app.state.ctx
        return ctx

    def client(self, user: str = "alice") -> httpx.Client:
        """An HTTP client of the API, as ``user``."""
        auth = {"Authorization": f"Bearer {self.keys[user]}"}
        return httpx.Client(base_url=self.url + PREFIX, headers=auth, timeout=30)


@contextmanager
def live_server(settings: Settings, users: tuple[str, ...] = ("alice", "bob")) -> Iterator[Live]:
    """The app served by uvicorn on a free port (workers and senders on) until the block ends."""
    app = create_app(settings)
    keys = {}
    with app.state.ctx.db.session() as s:
        for name in users:
            keys[name], _ = create_key(s, name)
    with uvicorn_in_thread(app) as url:
        yield Live(url, keys, app)


class Gauge:
    """How many requests are open at once, and the most there were."""

    def __init__(self) -> None:
        self.open = 0
        self.peak = 0
        self.lock = threading.Lock()

    def add(self, n: int) -> None:
        with self.lock:
            self.open += n
            self.peak = max(self.peak, self.open)


@dataclass
class Hit:
    """One request a receiver got: when, its message id, what it answered."""

    at: float
    message_id: str
    path: str
    answered: int


class Receiver:
    """A threaded HTTP server on 127.0.0.1 that answers every POST after ``delay_s``
    (204, or 500 to the first request of each message id with ``fail_first``).

    Its ``gauge`` (and ``shared``, when given) counts the requests open while it waits, a
    client that hangs up ending its count: ``gauge.peak`` is how many attempts were in
    flight to it at most.
    """

    def __init__(
        self, delay_s: float = 0.0, *, fail_first: bool = False, shared: Gauge | None = None
    ) -> None:
        self.delay_s = delay_s
        self.fail_first = fail_first
        self.hits: list[Hit] = []
        self.gauge = Gauge()
        self.gauges = [self.gauge] + ([shared] if shared is not None else [])
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                self.rfile.read(int(self.headers.get("content-length", 0)))
                receiver.enter()
                try:
                    hung_up = receiver.hold(self.connection)
                finally:
                    receiver.leave()
                code = receiver.answer(self.headers.get("webhook-id", ""), self.path)
                if hung_up:
                    return
                try:
                    self.send_response(code)
                    self.send_header("content-length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the sender's deadline cut it meanwhile

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook") -> str:
        """Where to POST."""
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def enter(self) -> None:
        for gauge in self.gauges:
            gauge.add(1)

    def leave(self) -> None:
        for gauge in self.gauges:
            gauge.add(-1)

    def hold(self, conn: socket.socket) -> bool:
        """Wait ``delay_s``; True when the client hung up first."""
        end = time.monotonic() + self.delay_s
        while (left := end - time.monotonic()) > 0:
            readable, _, _ = select.select([conn], [], [], min(left, 0.05))
            if readable and conn.recv(1, socket.MSG_PEEK) == b"":
                return True
        return False

    def answer(self, message_id: str, path: str) -> int:
        with self.lock:
            seen = any(h.message_id == message_id for h in self.hits)
            code = 500 if self.fail_first and not seen else 204
            self.hits.append(Hit(time.monotonic(), message_id, path, code))
        return code

    def accepted(self) -> list[Hit]:
        """Requests answered 2xx."""
        with self.lock:
            return [h for h in self.hits if h.answered < 300]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Trickler:
    """A receiver that sends its answer's status line, then one header line every 0.1 s,
    forever: an attempt with a per-read timeout never ends. Records when the client hung up."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.accepted_at: list[float] = []
        self.hung_up_at: list[float] = []
        self._stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()

    def _trickle(self, conn: socket.socket) -> None:
        self.accepted_at.append(time.monotonic())
        with conn:
            conn.recv(65536)
            try:
                conn.sendall(b"HTTP/1.1 200 OK\r\n")
                while not self._stop.is_set():
                    conn.sendall(b"x-slow: y\r\n")
                    time.sleep(0.1)
                    readable, _, _ = select.select([conn], [], [], 0)
                    if readable and not conn.recv(65536):  # (the rest of the request, or EOF)
                        break
            except OSError:
                pass
        self.hung_up_at.append(time.monotonic())

    def close(self) -> None:
        self._stop.set()
        self.sock.close()


@pytest.fixture
def receivers() -> Iterator[Callable[..., Receiver]]:
    """Make receivers; each is shut down at teardown."""
    made: list[Receiver] = []

    def make(
        delay_s: float = 0.0, *, fail_first: bool = False, shared: Gauge | None = None
    ) -> Receiver:
        made.append(Receiver(delay_s, fail_first=fail_first, shared=shared))
        return made[-1]

    yield make
    for r in made:
        r.close()


def _create(http: httpx.Client, url: str) -> httpx.Response:
    body = {"url": url, "events": ["job.completed"], "description": "fairness"}
    return http.post("/webhooks", json=body)


def _enqueue(ctx: Context, user: str, n: int = 1) -> None:
    """``n`` job.completed events of ``user``, committed at once."""
    with ctx.db.session() as s:
        user_id = s.scalar(sql_select(User.id).where(User.name == user))
        assert user_id is not None
        for i in range(n):
            enqueue_event(s, user_id, "job.completed", {"job_id": f"{user}-{i}"})


def _until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.02)


def test_a_slow_user_does_not_delay_another_users_delivery(
    tmp_path: Path, receivers: Callable[..., Receiver]
) -> None:
    users = Gauge()  # alice's attempts in flight, over her three endpoints
    slow = [receivers(delay_s=30, shared=users) for _ in range(3)]  # cut at the deadline
    fast = receivers(fail_first=True)  # bob's first attempt fails: the retry counts too
    with live_server(make_settings(tmp_path, **FAIR)) as live:
        alice, bob = live.client("alice"), live.client("bob")
        # Six webhooks to one slow endpoint and one to each of two more slow endpoints.
        urls = [slow[0].url(f"/a{i}") for i in range(6)] + [slow[1].url(), slow[2].url()]
        for url in urls:
            assert _create(alice, url).status_code == 201
        assert _create(bob, fast.url()).status_code == 201
        _enqueue(live.ctx, "alice", 5)  # 40 deliveries, every one of them slow
        _until(lambda: users.open >= 2, 10, "alice's attempts in flight")
        queued = time.monotonic()
        _enqueue(live.ctx, "bob")
        _until(lambda: bool(fast.accepted()), 4 * DEADLINE_S + 1, "bob's delivery")
        first, retry = fast.hits[0], fast.hits[1]
        # Each of bob's attempts starts within one attempt's deadline of falling due,
        # though alice has 40 deliveries due before his (the retry is due 0.2 s after).
        assert first.answered == 500 and retry.answered == 204
        assert first.at - queued < DEADLINE_S
        assert retry.at - first.at < 0.2 + DEADLINE_S
        time.sleep(DEADLINE_S)  # alice's attempts go on; watch them a while longer
        # One attempt in flight per endpoint, two per user, whatever alice's backlog.
        assert [r.gauge.peak for r in slow] == [1, 1, 1]
        assert users.peak == 2
        alice.close()
        bob.close()


def test_a_trickling_receiver_is_cut_at_the_deadline(tmp_path: Path) -> None:
    trickler = Trickler()
    deadline = 1.0
    settings = make_settings(tmp_path, **{**FAIR, "webhook_timeout_s": deadline})
    try:
        with live_server(settings) as live, live.client() as alice:
            hook = _create(alice, trickler.url).json()
            _enqueue(live.ctx, "alice")

            def attempted() -> bool:
                rows = alice.get(f"/webhooks/{hook['id']}/deliveries").json()["deliveries"]
                return bool(rows) and rows[0]["attempts"] >= 1

            _until(attempted, 10 * deadline, "the first attempt's end")
            [row] = alice.get(f"/webhooks/{hook['id']}/deliveries").json()["deliveries"]
            entry = row["log"][0]
            assert row["status"] == "pending" and row["last_status_code"] is None
            assert entry["error"] == f"no answer within the deadline of {deadline:g} s"
            # The whole attempt took the deadline, not a read timeout's worth per byte.
            assert deadline * 1000 <= entry["duration_ms"] < deadline * 1000 + 1000
            _until(lambda: bool(trickler.hung_up_at), 5, "the hang-up")
            assert trickler.hung_up_at[0] - trickler.accepted_at[0] < deadline + 1
    finally:
        trickler.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.service)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh job store: SQLite on a file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'shared.db'}"
        return
    with fresh_postgres() as url:
        yield url


def test_never_two_attempts_in_flight_to_one_endpoint(
    tmp_path: Path, store_url: str, receivers: Callable[..., Receiver]
) -> None:
    rx = receivers(delay_s=0.1)
    settings = make_settings(tmp_path / "server", database_url=store_url, **FAIR)
    with live_server(settings) as live:
        # A second process on the same store, with senders of its own.
        other = build_context(make_settings(tmp_path / "other", database_url=store_url, **FAIR))
        extra = WebhookSender(other, poll_interval_s=0.01, threads=4)
        extra.start()
        try:
            for user in ("alice", "bob"):
                with live.client(user) as http:
                    for path in ("/one", "/two?x=1", "/three"):
                        assert _create(http, rx.url(path)).status_code == 201
            _enqueue(live.ctx, "alice", 4)
            _enqueue(other, "bob", 4)
            _until(lambda: len(rx.accepted()) >= 24, 60, "24 deliveries")
            time.sleep(0.3)  # room for a duplicate to show up
        finally:
            extra.stop()
            other.db.dispose()
    ids = [h.message_id for h in rx.accepted()]
    assert len(ids) == len(set(ids)) == 24
    assert rx.gauge.peak == 1  # eight sender threads, two processes, one endpoint: one at a time


def test_webhooks_per_user_are_capped(tmp_path: Path, receivers: Callable[..., Receiver]) -> None:
    rx = receivers()
    settings = make_settings(tmp_path, **{**FAIR, "max_webhooks_per_user": 3})
    with live_server(settings) as live, live.client("alice") as alice, live.client("bob") as bob:
        # Eight at once: the cap holds under concurrency.
        answers: list[httpx.Response] = []
        barrier = threading.Barrier(8)

        def create(n: int) -> None:
            barrier.wait()
            answers.append(_create(alice, rx.url(f"/h{n}")))

        threads = [threading.Thread(target=create, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        codes = sorted(r.status_code for r in answers)
        assert codes == [201] * 3 + [409] * 5
        refused = next(r for r in answers if r.status_code == 409).json()
        assert refused["success"] is False and refused["error"] == "conflict"
        assert "RAGCAST_MAX_WEBHOOKS_PER_USER=3" in refused["message"]
        assert "You have 3 webhooks" in refused["message"]
        assert alice.get("/webhooks").json()["total"] == 3
        assert _create(bob, rx.url()).status_code == 201  # a cap per user
        first = alice.get("/webhooks").json()["webhooks"][0]["id"]
        assert alice.delete(f"/webhooks/{first}").status_code == 200
        assert _create(alice, rx.url("/again")).status_code == 201


def test_an_existing_store_gets_its_webhooks_endpoints(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))

    def upgrade(to: str) -> None:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, to)

    upgrade("0009")  # a data dir of the release before
    urls = [
        "https://Hooks.Example.com/in",
        "http://example.org:8080/x?y=1",
        "http://[2001:db8::1]/",
    ]
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO users (id, name, is_admin, created_at)"
                " VALUES (1, 'u', 0, '2026-01-01')"
            )
        )
        for pk, url in enumerate(urls, 1):
            conn.execute(
                text(
                    "INSERT INTO webhooks (id, webhook_id, user_id, url, events, secret,"
                    " created_at) VALUES (:pk, :wid, 1, :url, '[]', 's', '2026-01-01')"
                ),
                {"pk": pk, "wid": f"wh_{pk}", "url": url},
            )
        conn.execute(
            text(
                "INSERT INTO webhook_deliveries (webhook_pk, message_id, event, payload, status,"
                " attempts, created_at) VALUES (1, 'msg_1', 'job.completed', '{}', 'pending', 0,"
                " '2026-01-01')"
            )
        )
    upgrade("0010")
    with engine.connect() as conn:
        got = conn.execute(text("SELECT url, endpoint FROM webhooks ORDER BY id")).all()
        kept = conn.execute(text("SELECT count(*) FROM webhook_deliveries")).scalar()
    engine.dispose()
    assert [endpoint for _, endpoint in got] == [
        "https://hooks.example.com:443",
        "http://example.org:8080",
        "http://[2001:db8::1]:80",
    ]
    assert all(endpoint == endpoint_of(url) for url, endpoint in got)
    assert kept == 1  # the outbox survives the upgrade
