"""Webhooks over real sockets: a local receiver, real jobs and exports, retries, restarts,
two senders on one store, signatures checked with the ``standardwebhooks`` package."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from standardwebhooks import Webhook as Verifier

from ragcast.notify.outbox import enqueue_event
from ragcast.notify.sender import Claim, WebhookSender
from ragcast.store.models import User, utcnow
from tests.conftest import PREFIX, Api

#: fast retries, a short poll, and the local receiver allowed
FAST: dict[str, Any] = {
    "allow_loopback_fetch": True,
    "webhook_poll_interval_s": 0.05,
    "webhook_retry_schedule_s": (0.2, 0.2, 0.2),
    "webhook_timeout_s": 5.0,
}
TEXT = "The lighthouse keeper counted forty-two ships in the storm. Each one was logged."


@dataclass
class Received:
    """One request the receiver got, and what it answered."""

    headers: dict[str, str]
    body: bytes
    answered: int

    @property
    def message_id(self) -> str:
        """The ``webhook-id`` header."""
        return self.headers["webhook-id"]

    @property
    def payload(self) -> dict[str, Any]:
        """The JSON body."""
        data: dict[str, Any] = json.loads(self.body)
        return data


class Receiver:
    """A threaded HTTP server on 127.0.0.1 recording every POST.

    ``mode``: ``ok`` answers 204, ``fail`` answers 500, ``fail_first`` answers 500 to the
    first request of each message id and 204 to the next.
    """

    def __init__(self, mode: str = "ok") -> None:
        self.mode = mode
        self.requests: list[Received] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                code = receiver.answer(headers.get("webhook-id", ""))
                with receiver.lock:
                    receiver.requests.append(Received(headers, body, code))
                self.send_response(code)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass  # quiet test output

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        """Where to POST."""
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def answer(self, message_id: str) -> int:
        """The status for the next request of ``message_id``."""
        if self.mode == "fail":
            return 500
        if self.mode == "fail_first":
            with self.lock:
                seen = any(r.message_id == message_id for r in self.requests)
            return 204 if seen else 500
        return 204

    def accepted(self, event: str | None = None) -> list[Received]:
        """Requests answered 2xx, of ``event`` when given."""
        with self.lock:
            return [
                r
                for r in self.requests
                if r.answered < 300 and (event is None or r.payload["type"] == event)
            ]

    def wait(self, event: str, count: int = 1, timeout: float = 60) -> list[Received]:
        """Wait until ``count`` deliveries of ``event`` were accepted."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.accepted(event)
            if len(got) >= count:
                return got
            time.sleep(0.05)
        raise AssertionError(f"{event} not delivered; got {[r.payload for r in self.requests]}")

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Callable[..., Receiver]]:
    """Make receivers; each is shut down at teardown."""
    made: list[Receiver] = []

    def make(mode: str = "ok") -> Receiver:
        made.append(Receiver(mode))
        return made[-1]

    yield make
    for r in made:
        r.close()


def _create(api: Api, url: str, events: list[str], user: str = "alice") -> dict[str, Any]:
    r = api.client.post(
        f"{PREFIX}/webhooks",
        json={"url": url, "events": events, "description": "test"},
        headers=api.h(user),
    )
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def _deliveries(api: Api, hook_id: str, user: str = "alice") -> list[dict[str, Any]]:
    r = api.client.get(f"{PREFIX}/webhooks/{hook_id}/deliveries", headers=api.h(user))
    assert r.status_code == 200, r.text
    rows: list[dict[str, Any]] = r.json()["deliveries"]
    return rows


def _wait_deliveries(
    api: Api, hook_id: str, done: Callable[[list[dict[str, Any]]], bool], timeout: float = 30
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    rows = _deliveries(api, hook_id)
    while not done(rows):
        if time.monotonic() > deadline:
            raise AssertionError(f"deliveries never got there: {rows}")
        time.sleep(0.05)
        rows = _deliveries(api, hook_id)
    return rows


def _enqueue(api: Api, event: str, data: dict[str, Any], user: str = "alice") -> int:
    ctx = api.client.app.state.ctx  # type: ignore[attr-defined]
    with ctx.db.session() as s:
        user_id = s.scalar(select(User.id).where(User.name == user))
        queued: int = enqueue_event(s, user_id, event, data)
    return queued


def _verified(secret: str, got: Received) -> dict[str, Any]:
    payload: dict[str, Any] = Verifier(secret).verify(got.body, got.headers)
    return payload


def _doc(api: Api, tmp_path: Path, name: str = "notes.txt", data: bytes | None = None) -> str:
    path = tmp_path / name
    path.write_bytes(data if data is not None else TEXT.encode())
    return api.upload(path)


def test_create_list_delete_and_isolation(api: Api) -> None:
    hook = _create(api, "https://example.com/hook", ["job.completed", "job.completed"])
    assert set(hook) == {"id", "url", "events", "description", "secret", "created_at"}
    assert hook["id"].startswith("wh_") and hook["secret"].startswith("whsec_")
    assert hook["events"] == ["job.completed"]
    listed = api.client.get(f"{PREFIX}/webhooks", headers=api.h()).json()
    assert listed["total"] == 1 and "secret" not in listed["webhooks"][0]
    assert listed["webhooks"][0]["id"] == hook["id"]
    assert api.client.get(f"{PREFIX}/webhooks", headers=api.h("bob")).json()["total"] == 0
    for r in (
        api.client.delete(f"{PREFIX}/webhooks/{hook['id']}", headers=api.h("bob")),
        api.client.get(f"{PREFIX}/webhooks/{hook['id']}/deliveries", headers=api.h("bob")),
        api.client.delete(f"{PREFIX}/webhooks/wh_missing", headers=api.h()),
    ):
        assert r.status_code == 404 and r.json()["error"] == "not_found"
    gone = api.client.delete(f"{PREFIX}/webhooks/{hook['id']}", headers=api.h())
    assert gone.status_code == 200 and gone.json()["deleted"] is True
    assert api.client.get(f"{PREFIX}/webhooks", headers=api.h()).json()["total"] == 0
    assert api.client.get(f"{PREFIX}/webhooks").status_code == 401


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"url": "http://10.0.0.1/hook"}, "url", "private"),
        ({"url": "http://169.254.169.254/"}, "url", "metadata"),
        ({"url": "http://127.0.0.1:9/hook"}, "url", "loopback"),
        ({"url": "ftp://example.com/hook"}, "url", "http"),
        ({"url": "file:///etc/passwd"}, "url", "http"),
        ({"events": ["job.exploded"]}, "events", "job.completed, job.failed"),
        ({"events": []}, "events", "at least one"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(
    api: Api, body: dict[str, Any], field: str, words: str
) -> None:
    full = {"url": "https://example.com/hook", "events": ["job.completed"], **body}
    r = api.client.post(f"{PREFIX}/webhooks", json=full, headers=api.h())
    assert r.status_code == 400, r.text
    assert r.json()["details"]["field"] == field
    assert words in r.json()["details"]["issue"]


def test_job_events_are_retried_and_signed(
    api_factory: Callable[..., Api], receiver: Callable[..., Receiver], tmp_path: Path
) -> None:
    api = api_factory(**FAST)
    rx = receiver("fail_first")
    hook = _create(api, rx.url, ["job.completed", "item.failed"])
    assert api.submit("hooked", [_doc(api, tmp_path)]).status_code == 200
    assert api.wait("hooked")["status"] == "completed"
    [got] = rx.wait("job.completed")
    payload = _verified(hook["secret"], got)
    assert payload["type"] == "job.completed"
    data = payload["data"]
    assert data["job_id"] == "hooked" and data["status"] == "completed" and data["error"] is None
    assert data["result"]["total_items"] == 1 and data["result"]["completed_items"] == 1
    first = [r for r in rx.requests if r.message_id == got.message_id]
    assert [r.answered for r in first] == [500, 204]  # the same message id on the retry
    [row] = _wait_deliveries(api, hook["id"], lambda rows: rows[0]["status"] == "delivered")
    assert row["id"] == got.message_id and row["event"] == "job.completed"
    assert row["attempts"] == 2 and row["last_status_code"] == 204
    assert [a["status_code"] for a in row["log"]] == [500, 204]
    assert row["log"][0]["error"] == "HTTP 500" and row["next_attempt_at"] is None
    assert row["delivered_at"] and row["payload"] == payload


def test_a_corrupt_file_sends_item_failed(
    api_factory: Callable[..., Api], receiver: Callable[..., Receiver], tmp_path: Path
) -> None:
    api = api_factory(**FAST)
    rx = receiver()
    hook = _create(api, rx.url, ["item.failed", "job.completed", "job.failed"])
    good = _doc(api, tmp_path)
    bad = _doc(api, tmp_path, "broken.pdf", b"%PDF-1.7\n" + bytes(range(256)) * 8)
    assert api.submit("mixed", [good, bad]).status_code == 200
    assert api.wait("mixed")["result"]["failed_items"] == 1
    [failed] = rx.wait("item.failed")
    data = _verified(hook["secret"], failed)["data"]
    assert data["job_id"] == "mixed" and data["index"] == 1
    assert data["content_id"] and data["error"]
    [done] = rx.wait("job.completed")
    assert done.payload["data"]["result"]["failed_items"] == 1
    assert not rx.accepted("job.failed")


def test_export_completed(
    api_factory: Callable[..., Api], receiver: Callable[..., Receiver], tmp_path: Path
) -> None:
    api = api_factory(**FAST)
    rx = receiver()
    hook = _create(api, rx.url, ["export.completed"])
    api.submit("exported", [_doc(api, tmp_path)])
    api.wait("exported")
    body = {"job_id": "exported", "format": "json", "export_id": "exp-1"}
    assert api.client.post(f"{PREFIX}/export", json=body, headers=api.h()).status_code == 200
    [got] = rx.wait("export.completed")
    data = _verified(hook["secret"], got)["data"]
    assert data["export_id"] == "exp-1" and data["job_id"] == "exported"
    assert data["format"] == "json" and data["download_url"] == f"{PREFIX}/download/exp-1"
    file = api.client.get(data["download_url"], headers=api.h())
    assert file.status_code == 200 and len(file.content) == data["file_size"] > 0
    assert len(rx.accepted()) == 1  # subscribed to export.completed only


def test_a_cancelled_job_sends_job_cancelled(
    api_factory: Callable[..., Api], receiver: Callable[..., Receiver], tmp_path: Path
) -> None:
    api = api_factory(**FAST, max_active_jobs_per_user=1)
    rx = receiver()
    hook = _create(api, rx.url, ["job.cancelled"])
    doc = _doc(api, tmp_path)
    api.submit("busy", [doc])
    api.submit("waiting", [doc])
    # The second job waits for the first one's slot, so it is still open when cancelled.
    r = api.client.post(f"{PREFIX}/job/waiting/cancel", headers=api.h())
    assert r.status_code == 200, r.text
    [got] = rx.wait("job.cancelled")
    data = _verified(hook["secret"], got)["data"]
    assert data["job_id"] == "waiting" and data["status"] == "cancelled"
    assert data["error"] == "Job cancelled by user"
    assert api.wait("waiting")["status"] == "cancelled"


def test_a_restart_between_attempts_still_delivers(
    api_factory: Callable[..., Api], receiver: Callable[..., Receiver]
) -> None:
    first = api_factory(**FAST)
    rx = receiver("fail")
    hook = _create(first, rx.url, ["job.failed"])
    assert _enqueue(first, "job.failed", {"job_id": "j1", "error": "boom"}) == 1
    [row] = _wait_deliveries(first, hook["id"], lambda rows: rows[0]["attempts"] >= 1)
    assert row["status"] == "pending" and row["last_status_code"] == 500
    assert row["last_error"] == "HTTP 500" and row["next_attempt_at"] is not None
    assert row["log"][0]["status_code"] == 500 and row["log"][0]["duration_ms"] >= 0
    first.client.__exit__(None, None, None)  # the server stops; the row waits in the store
    tried = len(rx.requests)
    rx.mode = "ok"
    second = api_factory(**FAST)
    [got] = rx.wait("job.failed")
    assert got.message_id == row["id"] and len(rx.requests) == tried + 1
    assert _verified(hook["secret"], got)["data"] == {"job_id": "j1", "error": "boom"}
    [done] = _wait_deliveries(second, hook["id"], lambda rows: rows[0]["status"] == "delivered")
    assert done["attempts"] == tried + 1 and done["log"][-1]["status_code"] == 204


def test_retries_run_out(
    api_factory: Callable[..., Api], receiver: Callable[..., Receiver]
) -> None:
    api = api_factory(**{**FAST, "webhook_retry_schedule_s": (0.05, 0.05)})
    rx = receiver("fail")
    hook = _create(api, rx.url, ["job.completed"])
    _enqueue(api, "job.completed", {"job_id": "j"})
    [row] = _wait_deliveries(api, hook["id"], lambda rows: rows[0]["status"] == "failed")
    assert row["attempts"] == 3 and len(rx.requests) == 3  # the first try and two retries
    assert row["next_attempt_at"] is None and row["delivered_at"] is None


def test_two_senders_send_each_event_once(
    api_factory: Callable[..., Api], receiver: Callable[..., Receiver], tmp_path: Path
) -> None:
    one = api_factory(**FAST)
    two = api_factory(**FAST)  # a second process on the same store, senders running
    rx = receiver("fail_first")
    _create(one, rx.url, ["job.completed"])
    # A third sender with its own threads, as a `ragcast worker` would run.
    ctx = one.client.app.state.ctx  # type: ignore[attr-defined]
    extra = WebhookSender(ctx, poll_interval_s=0.01, threads=3)
    extra.start()
    try:
        for n in range(20):
            _enqueue(one if n % 2 else two, "job.completed", {"n": n})
        got = rx.wait("job.completed", count=20)
        time.sleep(0.5)  # room for a duplicate to show up
    finally:
        extra.stop()
    ids = [r.message_id for r in rx.accepted()]
    assert len(ids) == len(set(ids)) == 20
    assert sorted(r.payload["data"]["n"] for r in got) == list(range(20))
    assert len(rx.requests) == 40  # each failed once, then delivered once


def test_the_address_is_checked_again_at_send_time(
    api_factory: Callable[..., Api], receiver: Callable[..., Receiver], monkeypatch: Any
) -> None:
    # Made while loopback was allowed; then the server runs with the default rules.
    rx = receiver()
    first = api_factory(**FAST)
    hook = _create(first, rx.url, ["job.completed"])
    first.client.__exit__(None, None, None)
    strict = api_factory(**{**FAST, "allow_loopback_fetch": False})
    _enqueue(strict, "job.completed", {})
    [row] = _wait_deliveries(strict, hook["id"], lambda rows: rows[0]["attempts"] >= 1)
    assert row["last_status_code"] is None and "loopback" in row["last_error"]
    # A name that passed the check but connects to a refused address (DNS rebinding).
    monkeypatch.setattr("ragcast.notify.sender.check_url", lambda *a, **k: None)
    ctx = strict.client.app.state.ctx  # type: ignore[attr-defined]
    claim = Claim(0, utcnow(), "msg_x", rx.url, hook["secret"], {}, 0, [])
    with httpx.Client() as client:
        attempt = WebhookSender(ctx).post(client, claim)
    assert attempt.status_code is None and "refused to connect" in (attempt.error or "")
    assert rx.requests == []
