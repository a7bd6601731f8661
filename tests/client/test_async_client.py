"""Tests for :class:`ragcast.client.AsyncClient`: the app in-process through
``httpx.ASGITransport``, a real 429 waited out, typed errors, and the WebSocket monitor
against a live server."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from ragcast.api.app import create_app
from ragcast.auth import create_key
from ragcast.client import (
    ApiConnectionError,
    ApiError,
    AsyncClient,
    AuthError,
    CompletedEvent,
    ConflictError,
    Event,
    NotFoundError,
    RateLimitError,
    ValidationError,
)
from tests.client.conftest import SRT, LiveServer, diarized_server, serve_in_thread
from tests.client.test_client import closed_port, start_job
from tests.conftest import make_settings

BASE = "http://ragcast.test"
UPLOAD_JOB = {
    "platform": "documents",
    "input_method": "upload",
    "embedding_model": {"id": "local"},
    "vector_db": {"id": "chroma"},
    "settings": {"chunkSize": 256, "chunkOverlap": 32, "maxTokens": 8192},
}


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the client's waits; they still happen, shortened to nothing."""
    recorded: list[float] = []

    async def record(seconds: float) -> None:
        recorded.append(seconds)
        await asyncio.sleep(0)

    monkeypatch.setattr("ragcast.client.aio._sleep", record)
    return recorded


def mock_client(*answers: httpx.Response | Exception, **kw: Any) -> tuple[AsyncClient, list[Any]]:
    """An AsyncClient on a scripted transport; the list collects the requests."""
    script = list(answers)
    sent: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        await request.aread()
        sent.append(request)
        answer = script.pop(0) if len(script) > 1 else script[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    return AsyncClient(BASE, "rc_test", transport=httpx.MockTransport(handler), **kw), sent


def error(status: int, code: str, message: str, **extra: Any) -> httpx.Response:
    """A response with the contract's error body."""
    body = {"success": False, "error": code, "message": message, **extra}
    return httpx.Response(status, json=body)


async def test_a_429_is_retried_after_retry_after(waits: list[float]) -> None:
    client, sent = mock_client(
        error(429, "rate_limit_exceeded", "Too many requests.", retry_after=2),
        httpx.Response(200, json={"job_id": "j1", "status": "completed"}),
    )
    async with client:
        assert (await client.status("j1"))["status"] == "completed"
    assert waits == [2.0] and len(sent) == 2
    assert sent[0].headers["authorization"] == "Bearer rc_test"


async def test_a_retry_after_date_and_a_503_are_honoured(waits: list[float]) -> None:
    client, _ = mock_client(
        httpx.Response(503, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}),
        httpx.Response(503, headers={"Retry-After": "3"}),
        httpx.Response(200, json={}),
    )
    async with client:
        await client.jobs()
    assert waits == [0.0, 3.0]  # a date in the past means "now"


async def test_5xx_and_connection_errors_back_off_then_raise(waits: list[float]) -> None:
    client, sent = mock_client(httpx.ConnectError("refused"))
    async with client:
        with pytest.raises(ApiConnectionError) as info:
            await client.items("j1")
    assert waits == [1.0, 2.0, 4.0] and len(sent) == 4
    assert info.value.status_code == 0 and "refused" in info.value.message


async def test_a_wait_beyond_the_bound_is_raised_at_once(waits: list[float]) -> None:
    client, _ = mock_client(error(429, "rate_limit_exceeded", "later", retry_after=2700))
    async with client:
        with pytest.raises(RateLimitError) as info:
            await client.export("j1", "csv")
    assert info.value.retry_after == 2700 and waits == []


@pytest.mark.parametrize(
    ("status", "kind"),
    [(400, ValidationError), (401, AuthError), (404, NotFoundError), (409, ConflictError)],
)
async def test_errors_are_typed_and_not_retried(
    status: int, kind: type[ApiError], waits: list[float]
) -> None:
    client, sent = mock_client(
        error(status, "e", "nope", details={"field": "job_id", "issue": "Field required"})
    )
    async with client:
        with pytest.raises(kind) as info:
            await client.cancel("j1")
    assert info.value.message == "nope" and len(sent) == 1 and waits == []
    if isinstance(info.value, ValidationError):
        assert info.value.details == {"field": "job_id", "issue": "Field required"}


async def test_preview_sends_the_channel_and_the_page() -> None:
    page = {"url": "u", "platform": "youtube", "items": [], "page": 2, "has_more": False}
    client, sent = mock_client(httpx.Response(200, json=page))
    async with client:
        assert await client.preview("https://www.youtube.com/@x", page=2, page_size=10) == page
    assert sent[0].url.path == "/api/public/bulk/preview"
    assert dict(sent[0].url.params) == {
        "url": "https://www.youtube.com/@x",
        "page": "2",
        "page_size": "10",
    }


@pytest.fixture
async def in_process(tmp_path: Path) -> AsyncIterator[tuple[FastAPI, str]]:
    """The app with its lifespan (workers on) and a key; reads limited to 3 a second."""
    app = create_app(make_settings(tmp_path / "app", rate_limit_read="3/second"))
    with app.state.ctx.db.session() as s:
        key, _ = create_key(s, "alice")
    async with app.router.lifespan_context(app):
        yield app, key


async def test_the_sdk_in_process_through_asgi_transport(
    in_process: tuple[FastAPI, str], subtitles: Path, tmp_path: Path
) -> None:
    app, key = in_process
    slept: list[float] = []

    async def sleep(seconds: float) -> None:  # really waits: the server's window must pass
        slept.append(seconds)
        await asyncio.sleep(seconds)

    transport = httpx.ASGITransport(app=app)
    async with AsyncClient("http://testserver", key, transport=transport) as client:
        doc = await client.upload(subtitles)
        with pytest.raises(ValidationError) as info:
            await client.process({**UPLOAD_JOB, "job_id": "bad", "uploaded_documents": []})
        assert info.value.details == {
            "field": "uploaded_documents",
            "issue": "input_method 'upload' needs at least one document id",
        }
        accepted = await client.process(
            {**UPLOAD_JOB, "job_id": "async-1", "uploaded_documents": [doc["document_id"]]}
        )
        assert accepted["websocket_url"].startswith("ws://testserver/")
        ticket = await client.ticket("async-1")
        assert "?token=" in ticket["websocket_url"] and ticket["expires_in"] > 0

        # A real 429 from the server: its Retry-After is waited out, then the read succeeds.
        import ragcast.client.aio as aio

        original, aio._sleep = aio._sleep, sleep
        try:
            for _ in range(4):
                await client.status("async-1")
        finally:
            aio._sleep = original
        assert slept and 1 <= slept[0] <= 2

        status = await client.wait("async-1", poll_s=0.4, timeout=240)
        assert status["status"] == "completed" and status["result"]["completed_items"] == 1
        assert (await client.items("async-1"))["items"][0]["stage"] == "indexed"
        assert (await client.jobs())["total"] == 1

        hits = (await client.search("who polished the lens", job_id="async-1", top_k=1))["results"]
        assert hits[0]["source"] == "lighthouse.srt" and "lens" in hits[0]["text"]

        export_id = (await client.export("async-1", "json"))["export_id"]
        while (state := await client.export_status(export_id))["status"] != "completed":
            assert state["status"] != "failed", state
            await asyncio.sleep(0.4)
        seen: list[tuple[int, int]] = []
        path = await client.download(export_id, tmp_path, lambda d, t: seen.append((d, t)))
        assert path.name == state["filename"] and path.stat().st_size == state["file_size"]
        assert json.loads(path.read_text())["count"] >= 1
        assert seen[-1] == (state["file_size"], state["file_size"])

        with pytest.raises(NotFoundError):
            await client.status("no-such-job")
        with pytest.raises(ConflictError):
            await client.cancel("async-1")


async def test_monitor_follows_a_live_job_to_completed(
    live_server: LiveServer, subtitles: Path
) -> None:
    async with AsyncClient(live_server.url, live_server.key) as client:
        doc = await client.upload(subtitles)
        accepted = await client.process(
            {**UPLOAD_JOB, "job_id": "ws-1", "uploaded_documents": [doc["document_id"]]}
        )
        events: list[Event] = [e async for e in client.monitor("ws-1", accepted["websocket_url"])]
        assert events[0]["type"] == "progress"
        last = events[-1]
        assert last["type"] == "completed"
        completed: CompletedEvent = last
        assert completed["result"]["completed_items"] == 1 and completed["progress"] == 100
        stages = [e["item"]["stage"] for e in events if e["type"] == "progress" and "item" in e]
        assert "indexed" in stages
        progress = [e["progress"] for e in events if e["type"] != "error"]
        assert progress == sorted(progress)

        # With the API key instead of the ticket: the finished job's terminal message.
        assert [e["type"] async for e in client.monitor("ws-1")] == ["completed"]
        with pytest.raises(NotFoundError) as info:
            [e async for e in client.monitor("no-such-job")]
        assert "no-such-job" in info.value.message  # the server's own error body
        forged = accepted["websocket_url"].split("?")[0] + "?token=1.2.forged"
        with pytest.raises(AuthError):
            [e async for e in client.monitor("ws-1", forged)]


async def test_transcript_and_speaker_requests() -> None:
    client, sent = mock_client(
        httpx.Response(200, text="1\n00:00:00,000 --> 00:00:01,000\nHi\n"),
        httpx.Response(200, json={"job_id": "j1", "speakers": [], "updated_chunks": 0}),
        httpx.Response(200, json={"results": []}),
    )
    async with client:
        assert (await client.transcript("j1", 0, "srt")).endswith("Hi\n")
        await client.name_speakers("j1", 0, {"SPEAKER_01": None})
        await client.search("lens", speaker="SPEAKER_01")
    assert sent[0].url.raw_path == b"/api/public/bulk/job/j1/items/0/transcript?format=srt"
    assert sent[1].method == "PATCH" and json.loads(sent[1].content) == {"SPEAKER_01": None}
    assert json.loads(sent[2].content)["speaker"] == "SPEAKER_01"


DIARIZED = "async-talk"


@pytest.fixture(scope="module")
def talk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A real server with one finished two-speaker job (diarized, small chunks)."""
    with diarized_server(tmp_path_factory.mktemp("talk"), DIARIZED) as live:
        yield live


async def test_a_diarized_transcript_in_every_format_and_named_speakers(
    talk: LiveServer,
) -> None:
    async with AsyncClient(talk.url, talk.key) as client:
        body = await client.transcript(DIARIZED, 0)
        assert [s["label"] for s in body["speakers"]] == ["SPEAKER_00", "SPEAKER_01"]
        assert body["segments"]
        assert all(s["speaker"] in ("SPEAKER_00", "SPEAKER_01") for s in body["segments"])
        srt = await client.transcript(DIARIZED, 0, format="srt")
        cues = [block.splitlines() for block in srt.strip().split("\n\n")]
        assert cues and all(c[2].startswith(("SPEAKER_00: ", "SPEAKER_01: ")) for c in cues)
        vtt = await client.transcript(DIARIZED, 0, format="vtt")
        assert vtt.startswith("WEBVTT") and "<v SPEAKER_0" in vtt
        txt = await client.transcript(DIARIZED, 0, format="txt")
        assert txt.startswith("SPEAKER_0") and "country" in txt.lower()

        named = await client.name_speakers(DIARIZED, 0, {"SPEAKER_00": "Host"})
        assert named["speakers"][0] == {"label": "SPEAKER_00", "name": "Host"}
        assert named["updated_chunks"] >= 2
        body = await client.transcript(DIARIZED, 0)
        assert body["speakers"][0]["name"] == "Host"
        assert "\nHost: " in await client.transcript(DIARIZED, 0, format="srt")
        found = await client.search("what can you do for your country", speaker="Host")
        assert found["results"] and all(h["speaker"] == "Host" for h in found["results"])

        # null forgets the name: the label is back everywhere
        forgot = await client.name_speakers(DIARIZED, 0, {"SPEAKER_00": None})
        assert forgot["speakers"][0] == {"label": "SPEAKER_00", "name": "SPEAKER_00"}
        assert "Host" not in await client.transcript(DIARIZED, 0, format="txt")
        assert (await client.search("country", speaker="Host"))["results"] == []


async def test_transcript_and_speaker_errors(talk: LiveServer) -> None:
    async with AsyncClient(talk.url, talk.key) as client:
        with pytest.raises(ValidationError) as bad_format:
            await client.transcript(DIARIZED, 0, format="xml")
        assert bad_format.value.status_code == 400
        with pytest.raises(ValidationError) as unknown:
            await client.name_speakers(DIARIZED, 0, {"SPEAKER_09": "Guest"})
        assert unknown.value.status_code == 400 and "SPEAKER_09" in unknown.value.message
        with pytest.raises(NotFoundError):
            await client.transcript("no-such-job", 0, format="txt")


# -- wait: the job's WebSocket, polling when there is none ------------------------------


class Counting(httpx.AsyncHTTPTransport):
    """The real network, recording each request's path; paths ending in ``refuse`` are
    answered 404 without reaching the server (a proxy that does not know them)."""

    def __init__(self, refuse: str | None = None) -> None:
        super().__init__()
        self.paths: list[str] = []
        self.refuse = refuse

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        if self.refuse is not None and request.url.path.endswith(self.refuse):
            return httpx.Response(404, json={"error": "not_found", "message": "no route"})
        return await super().handle_async_request(request)

    def count(self, job_id: str, what: str) -> int:
        return self.paths.count(f"/api/public/bulk/job/{job_id}/{what}")


@pytest.fixture(scope="module")
def waiting_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A real server for the ``wait`` tests (reads not limited: polling is counted)."""
    tmp = tmp_path_factory.mktemp("wait")
    (tmp / "notes.srt").write_text(SRT)
    with serve_in_thread(make_settings(tmp / "server", rate_limit_read="100000/hour")) as live:
        yield live


@pytest.fixture
def gate(waiting_server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """The server's item stages wait until this event is set (it is, at the latest, at the
    end), so a job is surely still running when ``wait`` starts."""
    from ragcast.runner import tasks

    opened = threading.Event()
    run_stage = tasks.run_stage

    def held(*args: Any, **kwargs: Any) -> None:
        opened.wait(120)
        run_stage(*args, **kwargs)

    monkeypatch.setattr(tasks, "run_stage", held)
    yield opened
    opened.set()


async def test_wait_follows_the_socket_instead_of_polling(
    waiting_server: LiveServer, gate: threading.Event
) -> None:
    start_job(waiting_server, "follow-1")
    transport = Counting()
    asyncio.get_running_loop().call_later(0.5, gate.set)
    async with AsyncClient(waiting_server.url, waiting_server.key, transport=transport) as client:
        status = await client.wait("follow-1", poll_s=0.05, timeout=120)
        # Once before the socket, once after its terminal message, where polling every
        # 0.05 s through the held half second and the indexing would read it dozens of times.
        assert transport.count("follow-1", "status") == 2
        assert transport.count("follow-1", "ticket") == 1
        assert status["status"] == "completed" and status["result"]["completed_items"] == 1
        assert status == await client.status("follow-1")

        transport.paths.clear()  # a finished job: one status read, no socket
        assert (await client.wait("follow-1", poll_s=0.05))["status"] == "completed"
        assert transport.paths == ["/api/public/bulk/job/follow-1/status"]


async def test_the_timeout_holds_while_following_the_socket(
    waiting_server: LiveServer, gate: threading.Event
) -> None:
    start_job(waiting_server, "follow-slow")
    transport = Counting()
    async with AsyncClient(waiting_server.url, waiting_server.key, transport=transport) as client:
        started = time.monotonic()
        with pytest.raises(TimeoutError, match="follow-slow"):
            await client.wait("follow-slow", poll_s=0.05, timeout=0.5)
        assert time.monotonic() - started < 5
    assert transport.count("follow-slow", "ticket") == 1
    assert transport.count("follow-slow", "status") == 2  # before the socket and at the end


def drop_after_the_first_message(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cut the socket's TCP connection once its first message arrived (a server restart)."""
    import websockets.asyncio.client

    real_connect = websockets.asyncio.client.connect

    async def connect(*args: Any, **kwargs: Any) -> Any:
        connection = await real_connect(*args, **kwargs)
        first = connection.recv

        async def recv(*a: Any, **kw: Any) -> Any:
            message = await first(*a, **kw)
            connection.transport.abort()
            return message

        connection.recv = recv  # type: ignore[method-assign]
        return connection

    monkeypatch.setattr(websockets.asyncio.client, "connect", connect)


@pytest.mark.parametrize("failure", ["no ticket route", "socket refused", "socket dropped"])
async def test_wait_polls_when_the_socket_fails(
    waiting_server: LiveServer,
    gate: threading.Event,
    monkeypatch: pytest.MonkeyPatch,
    failure: str,
) -> None:
    job_id = "fallback-" + failure.replace(" ", "-")
    start_job(waiting_server, job_id)
    transport = Counting(refuse="/ticket" if failure == "no ticket route" else None)
    client = AsyncClient(waiting_server.url, waiting_server.key, transport=transport)
    if failure == "socket refused":
        url = f"ws://127.0.0.1:{closed_port()}/api/public/bulk/ws/bulk-processing/{job_id}"

        async def ticket(job_id: str) -> dict[str, Any]:
            return {"websocket_url": url}

        monkeypatch.setattr(client, "ticket", ticket)
    if failure == "socket dropped":
        drop_after_the_first_message(monkeypatch)
    asyncio.get_running_loop().call_later(1.0, gate.set)
    async with client:
        status = await client.wait(job_id, poll_s=0.05, timeout=120)
    assert status["status"] == "completed" and status["result"]["completed_items"] == 1
    assert transport.count(job_id, "status") >= 5  # polled while the stages were held
