"""What a hostile tester found next, each reproduced against a real server over HTTP.

One server per store (SQLite with limits in memory; PostgreSQL with limits in Redis),
shared by the module's tests; every test acts as users of its own, so the per-user rate
limits of one test never touch another's.

- ``/mcp`` counts in the ``mcp`` bucket (429 and ``X-RateLimit-*`` as every route) and
  finds keys in the process's key cache;
- speaker renames count in ``write``, and a request refused as invalid is counted in
  ``read``, never in its route's ``process`` bucket;
- a speaker's name is one visible line, and no name or text forges an SRT/WebVTT cue;
- of concurrent deletions of one job exactly one answers 200;
- a validation error names the field the client sent (``query``), not ``body``.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import select

from ragcast.api.app import create_app
from ragcast.auth import Principal, create_key
from ragcast.integrations.mcp import sdk_available
from ragcast.pipeline.types import Segment, Transcript
from ragcast.store.models import Item
from ragcast.store.models import Transcript as TranscriptRow
from tests.api.seed import seed_job
from tests.conftest import PREFIX, fresh_postgres, job_body, make_settings

REDIS_URL = os.environ.get("RAGCAST_TEST_REDIS", "redis://127.0.0.1:6379/0")
LIMITS = {"process": 3, "write": 300, "read": 1000, "mcp": 5}
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}
TIMING = re.compile(r"\d\d:\d\d:\d\d[,.]\d\d\d --> \d\d:\d\d:\d\d[,.]\d\d\d")


@dataclass
class Person:
    """A user of the served store: the API key, the name and the id."""

    key: str
    name: str
    id: int


@dataclass
class Served:
    """A server on a real socket, and the app behind it (to seed and to watch it)."""

    url: str
    app: FastAPI

    def user(self, prefix: str) -> Person:
        """A new user: the test's own rate-limit windows."""
        with self.app.state.ctx.db.session() as s:
            key, row = create_key(s, f"{prefix}-{secrets.token_hex(3)}")
            return Person(key, row.user.name, row.user_id)

    def client(self, person: Person) -> httpx.Client:
        """A client of the API acting as ``person``."""
        headers = {"Authorization": f"Bearer {person.key}"}
        return httpx.Client(base_url=self.url + PREFIX, headers=headers, timeout=60)


@pytest.fixture(
    scope="module",
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.service)],
)
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """The API served by uvicorn on a free port (no workers: jobs are seeded)."""
    tmp = tmp_path_factory.mktemp(f"hardening-{request.param}")
    limits = {f"rate_limit_{bucket}": f"{n}/hour" for bucket, n in LIMITS.items()}
    with _store(request.param) as extra:
        settings = make_settings(tmp, **limits, **extra)
        app = create_app(settings, run_workers=False)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(app, log_config=None, log_level="warning", access_log=False)
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + 30
            # With Redis, wait until the key and status events are followed: then a key
            # cached now is not forgotten by the subscription's start.
            while not server.started or not app.state.statuses.enabled:
                assert thread.is_alive() and time.monotonic() < deadline, "no server"
                time.sleep(0.02)
            yield Served(f"http://127.0.0.1:{port}", app)
        finally:
            server.should_exit = True
            thread.join(timeout=30)
            sock.close()


@contextmanager
def _store(kind: str) -> Iterator[dict[str, Any]]:
    """The settings of one kind of store: SQLite, or a fresh PostgreSQL database and Redis."""
    if kind == "sqlite":
        yield {}
        return
    with fresh_postgres() as url:
        prefix = f"ragcast-hardening-{secrets.token_hex(4)}"
        yield {"database_url": url, "redis_url": REDIS_URL, "redis_key_prefix": prefix}


def _rates(r: httpx.Response) -> tuple[int, int]:
    """The ``X-RateLimit-Limit`` and ``-Remaining`` of an answer."""
    return int(r.headers["X-RateLimit-Limit"]), int(r.headers["X-RateLimit-Remaining"])


def _opened(c: httpx.Client, path: str) -> httpx.Response:
    """The answer to a GET of a stream, closed once its headers came."""
    with c.stream("GET", path) as r:
        return r


def _error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    assert body["success"] is False and body["error"] == code, body
    return body


def _seed_talk(served: Served, user: Person, job_id: str, segments: list[Segment]) -> int:
    """A finished job of ``user`` whose item 0 has a diarized transcript of ``segments``."""
    ctx = served.app.state.ctx
    job_pk = seed_job(ctx, user.name, job_id, 1, statuses=("completed",))
    labels = sorted({s.speaker for s in segments if s.speaker})
    data = Transcript("asr", "en", 60.0, segments, speakers=labels)
    with ctx.db.session() as s:
        item = s.scalar(select(Item).where(Item.job_pk == job_pk, Item.index == 0))
        assert item is not None
        text = " ".join(seg.text for seg in segments)
        s.add(TranscriptRow(item_id=item.id, source="asr", data=data.to_dict(), text=text))
    return job_pk


# -- 1. /mcp: rate limited, keys from the cache --------------------------------------------


def test_mcp_requests_count_in_the_mcp_bucket_with_the_contracts_429(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not sdk_available():
        pytest.skip("needs the integrations extra (mcp 2.x)")
    me = served.user("mcp")
    headers = {**MCP_HEADERS, "Authorization": f"Bearer {me.key}"}
    listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    keys = served.app.state.keys
    store_reads = 0
    original = keys.authenticate

    def counting(s: Any, given: str | None) -> Principal:
        nonlocal store_reads
        store_reads += 1
        found: Principal = original(s, given)
        return found

    monkeypatch.setattr(keys, "authenticate", counting)
    with served.client(me) as api:
        assert _rates(api.get("/jobs")) == (1000, 999)  # the key is read from the store here
    with httpx.Client(base_url=served.url, headers=headers, timeout=60) as c:
        answers = [
            c.post("/mcp", json=listing),
            c.post("/mcp", content=b"{not json", headers={"Content-Type": "application/json"}),
            c.post("/mcp", json={"jsonrpc": "2.0", "id": 2, "method": "no/such"}),
            _opened(c, "/mcp"),  # a GET is a stream the server keeps open
            c.post("/mcp", json=listing),
        ]
        refused = c.post("/mcp", json=listing)
        assert store_reads == 1, "an /mcp request read the key from the store"
        stranger = c.post("/mcp", json=listing, headers={"Authorization": "Bearer rc_nope12345678"})
    assert [_rates(r) for r in answers] == [(5, 4), (5, 3), (5, 2), (5, 1), (5, 0)]
    assert answers[0].status_code == 200 and '"search"' in answers[0].text
    body = _error(refused, 429, "rate_limit_exceeded")
    assert 0 < body["retry_after"] <= 3600 and "Too many requests" in body["message"]
    assert refused.headers["Retry-After"] == str(body["retry_after"])
    assert _rates(refused) == (5, 0)
    assert int(refused.headers["X-RateLimit-Reset"]) > time.time()
    _error(stranger, 401, "unauthorized")  # a bad key is refused, and counts nothing
    with served.client(me) as api:  # /mcp spent nothing of the REST API's read bucket
        assert _rates(api.get("/jobs")) == (1000, 998)


# -- 2. renames and invalid requests spare the process bucket ------------------------------


def test_renames_and_invalid_requests_do_not_spend_the_process_bucket(served: Served) -> None:
    me = served.user("renamer")
    _seed_talk(served, me, "named", [Segment("Hello there.", 0.0, 2.0, speaker="SPEAKER_00")])
    with served.client(me) as c:
        for n in range(18):
            r = c.patch("/job/named/items/0/speakers", json={"SPEAKER_00": f"Host {n}"})
            assert r.status_code == 200, r.text
            assert _rates(r) == (300, 300 - n - 1)
        urls = job_body("v1", [], input_method="urls", pasted_urls=["https://example.com/a"])
        invalid = [
            c.post("/process", json={"job_id": "x"}),  # FastAPI's validation
            c.post("/process", json={**job_body("v1", []), "settings": {"chunkSize": 0}}),
            c.post("/process", json=urls),  # the handler's own ValidationError
            c.post("/process", json=[1, 2]),
            c.patch("/job/named/items/0/speakers", json=["SPEAKER_00"]),
        ]
        for r in invalid:
            _error(r, 400, "validation_error")
        assert [_rates(r) for r in invalid[:4]] == [(3, 3)] * 4  # given back, and said so
        assert _rates(invalid[4]) == (300, 282)
        # The process bucket is whole: three counted requests, then the 429.
        counted = [c.post("/subscriptions/sub_missing/run") for _ in range(3)]
        assert [(r.status_code, _rates(r)) for r in counted] == [
            (404, (3, 2)),
            (404, (3, 1)),
            (404, (3, 0)),
        ]
        _error(c.post("/subscriptions/sub_missing/run"), 429, "rate_limit_exceeded")
        # The five invalid requests counted in `read` instead (and this one).
        assert _rates(c.get("/jobs")) == (1000, 1000 - 6)


def test_when_read_is_full_an_invalid_request_keeps_its_process_hit(served: Served) -> None:
    me = served.user("full")
    limiter = served.app.state.limiter
    for _ in range(LIMITS["read"]):
        limiter.hit("read", me.id)
    with served.client(me) as c:
        r = c.post("/process", json={"job_id": "x"})
        _error(r, 400, "validation_error")
        assert _rates(r) == (3, 2)  # nothing was given back: it stays counted
        _error(c.get("/jobs"), 429, "rate_limit_exceeded")


# -- 3. names and text that would forge cues -----------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "\u202etsoH",
        "Ho\u200bst",
        "\ufeffHost",
        "Host\u2060",
        "00:00:30,000 --> 00:00:40,000",
        "Host -->",
        "Host\nGuest",
        "Host\r\n\r\n2",
        "Host\u2028Guest",
        "Host\u0085Guest",
        "Tab\there",
        "Bell\x07",
    ],
)
def test_invisible_and_cue_shaped_speaker_names_are_refused(served: Served, name: str) -> None:
    me = served.user("names")
    _seed_talk(served, me, "forged", [Segment("Hi.", 0.0, 1.0, speaker="SPEAKER_00")])
    with served.client(me) as c:
        r = c.patch("/job/forged/items/0/speakers", json={"SPEAKER_00": name})
        body = _error(r, 400, "validation_error")
        assert body["details"]["field"] == "SPEAKER_00" and body["details"]["issue"]
        fine = c.patch("/job/forged/items/0/speakers", json={"SPEAKER_00": "Zoë O'Brien -> Ana"})
        assert fine.status_code == 200, fine.text
        assert fine.json()["speakers"][0]["name"] == "Zoë O'Brien -> Ana"


def _srt_cues(text: str) -> list[list[str]]:
    """The cues of an SRT file, each checked to be number, timing and one line of text."""
    blocks = [b.split("\n") for b in text.strip("\n").split("\n\n")]
    for n, block in enumerate(blocks, start=1):
        assert len(block) == 3, block
        assert block[0] == str(n) and TIMING.fullmatch(block[1]), block
        assert "-->" not in block[2] and block[2].strip(), block
    return blocks


def _vtt_cues(text: str) -> list[list[str]]:
    """The cues of a WebVTT file, each checked to be timing and one line of text."""
    header, *blocks = [b.split("\n") for b in text.strip("\n").split("\n\n")]
    assert header == ["WEBVTT"]
    for block in blocks:
        assert len(block) == 2 and TIMING.fullmatch(block[0]), block
        assert "-->" not in block[1] and block[1].strip(), block
    return blocks


def test_no_speaker_name_or_text_forges_a_subtitle_cue(served: Served) -> None:
    me = served.user("writer")
    forged = "First line.\n\n99\n00:00:30,000 --> 00:00:40,000\nforged"
    segments = [
        Segment(forged, 0.0, 2.0, speaker="SPEAKER_00"),
        Segment(
            "Arrows ---> and --> and <b>tags</b>\r\n\r\nNOTE x", 2.0, 4.0, speaker="SPEAKER_01"
        ),
        Segment("\u2028\x01\x1f", 4.0, 5.0, speaker="SPEAKER_00"),  # nothing visible: no cue
        Segment("Last\u2029one.", 5.0, 6.0, speaker="SPEAKER_01"),
    ]
    job_pk = _seed_talk(served, me, "cues", segments)
    # A name stored before names were checked: the writer alone keeps it in its cue.
    with served.app.state.ctx.db.session() as s:
        item = s.scalar(select(Item).where(Item.job_pk == job_pk))
        assert item is not None
        item.speaker_map = {"SPEAKER_01": "Old\n\n7\n00:01:00,000 --> 00:01:05,000\nX"}
    with served.client(me) as c:
        srt = c.get("/job/cues/items/0/transcript", params={"format": "srt"})
        vtt = c.get("/job/cues/items/0/transcript", params={"format": "vtt"})
    assert srt.status_code == 200 and vtt.status_code == 200
    srt_cues, vtt_cues = _srt_cues(srt.text), _vtt_cues(vtt.text)
    assert len(srt_cues) == len(vtt_cues) == 3
    assert srt_cues[0][2] == "SPEAKER_00: First line. 99 00:00:30,000 -> 00:00:40,000 forged"
    old = "Old 7 00:01:00,000 -> 00:01:05,000 X"
    assert srt_cues[1][2] == f"{old}: Arrows -> and -> and <b>tags</b> NOTE x"
    assert srt_cues[2][2] == f"{old}: Last one."
    assert vtt_cues[1][1] == (
        "<v Old 7 00:01:00,000 --&gt; 00:01:05,000 X>"
        "Arrows ---&gt; and --&gt; and &lt;b&gt;tags&lt;/b&gt; NOTE x"
    )


# -- 4. concurrent deletes -----------------------------------------------------------------


def test_of_concurrent_deletes_of_one_job_exactly_one_answers_200(served: Served) -> None:
    me = served.user("deleter")
    jobs = [f"gone-{n}" for n in range(4)]
    for job_id in jobs:
        seed_job(served.app.state.ctx, me.name, job_id, 3)
    tries = 8

    def delete(job_id: str, barrier: threading.Barrier) -> httpx.Response:
        with served.client(me) as c:
            c.get("/jobs")  # connected first, so that the deletes leave together
            barrier.wait(timeout=30)
            return c.delete(f"/job/{job_id}")

    with ThreadPoolExecutor(tries) as pool:
        for job_id in jobs:
            barrier = threading.Barrier(tries)
            answers = list(pool.map(delete, [job_id] * tries, [barrier] * tries))
            statuses = sorted(r.status_code for r in answers)
            assert statuses == [200] + [404] * (tries - 1), [r.text for r in answers]
            won = next(r for r in answers if r.status_code == 200).json()
            assert won["job_id"] == job_id and won["deleted_items"] == 3
            for r in answers:
                if r.status_code == 404:
                    assert _error(r, 404, "not_found")["message"] == f"Job {job_id!r} not found"
    with served.client(me) as c:
        assert c.get("/jobs").json()["total"] == 0
        _error(c.delete(f"/job/{jobs[0]}"), 404, "not_found")


def test_a_running_job_is_still_refused_with_409(served: Served) -> None:
    me = served.user("runner")
    seed_job(served.app.state.ctx, me.name, "busy", 1, finished=False)
    with served.client(me) as c:
        _error(c.delete("/job/busy"), 409, "conflict")
        assert c.get("/job/busy/status").json()["status"] == "processing"


# -- 5. the field a validation error names -------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body", "params", "field"),
    [
        ("POST", "/search", {"query": ""}, None, "query"),
        ("POST", "/search", {"query": 7}, None, "query"),
        ("POST", "/search", {"top_k": 3}, None, "query"),
        ("POST", "/search", {"query": "x", "top_k": 0}, None, "top_k"),
        ("POST", "/search", {"query": "x", "mode": "psychic"}, None, "mode"),
        ("POST", "/search", {"query": "x", "job_id": "has space"}, None, "job_id"),
        ("POST", "/search", [1], None, "body"),
        (
            "POST",
            "/process",
            job_body("v", [], input_method="urls", pasted_urls=[5]),
            None,
            "pasted_urls[0]",
        ),
        ("POST", "/export", {"job_id": "a", "format": "pdf"}, None, "format"),
        ("GET", "/jobs", None, {"limit": 0}, "limit"),
        ("GET", "/jobs", None, {"status": "query"}, "status"),
        ("GET", "/job/x/items", None, {"after": -1}, "after"),
        ("GET", "/job/bad%20id/status", None, None, "job_id"),
    ],
)
def test_validation_errors_name_the_field_that_was_sent(
    served: Served,
    method: str,
    path: str,
    body: Any,
    params: dict[str, Any] | None,
    field: str,
) -> None:
    me = served.user("fields")
    with served.client(me) as c:
        r = c.request(method, path, json=body, params=params)
    answer = _error(r, 400, "validation_error")
    assert set(answer) == {"success", "error", "message", "details"}
    assert set(answer["details"]) == {"field", "issue"}
    assert answer["details"]["field"] == field, answer
    assert answer["message"].startswith(f"Invalid request: {field}: ")
