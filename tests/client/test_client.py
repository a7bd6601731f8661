"""Tests for :mod:`ragcast.client`: retries and error mapping on a mock transport, then
the whole SDK against a real server."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ragcast.client import (
    ApiConnectionError,
    ApiError,
    AuthError,
    Client,
    ConflictError,
    NotFoundError,
    RateLimitError,
    ValidationError,
)
from tests.client.conftest import SRT, LiveServer, diarized_server, serve_in_thread
from tests.conftest import make_settings

BASE = "http://ragcast.test"


class Recorder:
    """A mock transport answering from a script, recording each request."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def client(self, **kwargs: Any) -> Client:
        return Client(BASE, "rc_test", transport=httpx.MockTransport(self), **kwargs)


def error(status: int, code: str, message: str, **extra: Any) -> httpx.Response:
    """A response with the contract's error body."""
    body = {"success": False, "error": code, "message": message, **extra}
    return httpx.Response(status, json=body)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the client's waits instead of waiting."""
    waited: list[float] = []
    monkeypatch.setattr("ragcast.client.sync.time.sleep", waited.append)
    return waited


def test_429_is_retried_after_retry_after(sleeps: list[float]) -> None:
    rec = Recorder(
        httpx.Response(429, headers={"Retry-After": "1"}, json={"message": "slow down"}),
        httpx.Response(200, json={"job_id": "j1", "status": "completed"}),
    )
    assert rec.client().status("j1")["status"] == "completed"
    assert len(rec.requests) == 2
    assert sleeps == [1.0]
    assert rec.requests[0].headers["authorization"] == "Bearer rc_test"
    assert rec.requests[0].url.path == "/api/public/bulk/job/j1/status"


def test_429_with_a_wait_beyond_the_cap_is_raised_at_once(sleeps: list[float]) -> None:
    rec = Recorder(
        error(429, "rate_limit_exceeded", "Too many requests.", retry_after=2700),
    )
    with pytest.raises(RateLimitError) as info:
        rec.client(max_retry_wait=60).jobs()
    assert info.value.retry_after == 2700
    assert len(rec.requests) == 1 and sleeps == []


def test_5xx_backs_off_1_2_4_then_raises(sleeps: list[float]) -> None:
    rec = Recorder(error(503, "processing_error", "Internal server error", request_id="req-1"))
    with pytest.raises(ApiError) as info:
        rec.client().status("j1")
    assert len(rec.requests) == 4
    assert sleeps == [1.0, 2.0, 4.0]
    assert info.value.status_code == 503 and info.value.request_id == "req-1"


def test_process_is_retried_with_the_same_job_id(sleeps: list[float]) -> None:
    rec = Recorder(
        httpx.ConnectError("refused"),
        error(500, "processing_error", "Internal server error"),
        httpx.Response(200, json={"success": True, "job_id": "x"}),
    )
    rec.client().process({"platform": "documents"})
    ids = {json.loads(r.content)["job_id"] for r in rec.requests}
    assert len(rec.requests) == 3 and sleeps == [1.0, 2.0]
    assert len(ids) == 1 and ids.pop().startswith("bulk-")


def test_export_id_is_fixed_before_the_first_try(sleeps: list[float]) -> None:
    rec = Recorder(error(502, "http_error", "bad gateway"), httpx.Response(200, json={}))
    rec.client().export("j1", "csv")
    bodies = [json.loads(r.content) for r in rec.requests]
    assert bodies[0] == bodies[1] and bodies[0]["export_id"].startswith("export-")


def test_connection_errors_end_as_api_connection_error(sleeps: list[float]) -> None:
    rec = Recorder(httpx.ConnectError("refused"))
    with pytest.raises(ApiConnectionError) as info:
        rec.client(max_retries=1).status("j1")
    assert info.value.status_code == 0 and "refused" in info.value.message
    assert isinstance(info.value.__cause__, httpx.ConnectError)
    assert sleeps == [1.0]


def test_400_is_a_validation_error_with_details(sleeps: list[float]) -> None:
    rec = Recorder(
        error(
            400,
            "validation_error",
            "Invalid embedding model configuration",
            details={
                "field": "embedding_model.dimensions",
                "issue": "Must be between 128 and 2048",
            },
        )
    )
    with pytest.raises(ValidationError) as info:
        rec.client().process({"job_id": "j1"})
    assert info.value.details == {
        "field": "embedding_model.dimensions",
        "issue": "Must be between 128 and 2048",
    }
    assert info.value.message == "Invalid embedding model configuration"
    assert info.value.code == "validation_error"
    assert len(rec.requests) == 1 and sleeps == []


@pytest.mark.parametrize(
    ("status", "kind"),
    [(401, AuthError), (403, AuthError), (404, NotFoundError), (409, ConflictError)],
)
def test_error_statuses_map_to_their_class(status: int, kind: type[ApiError]) -> None:
    rec = Recorder(error(status, "some_error", "nope"))
    with pytest.raises(kind):
        rec.client().cancel("j1")
    assert len(rec.requests) == 1


def test_a_non_json_error_body_still_gives_a_message(sleeps: list[float]) -> None:
    rec = Recorder(httpx.Response(502, text="<html>Bad Gateway</html>"))
    with pytest.raises(ApiError) as info:
        rec.client(max_retries=0).jobs()
    assert info.value.status_code == 502 and "Bad Gateway" in info.value.message


def test_upload_streams_a_multipart_file_and_reports_progress(tmp_path: Path) -> None:
    path = tmp_path / "talk.wav"
    path.write_bytes(b"RIFF" + bytes(300_000))
    rec = Recorder(httpx.Response(200, json={"document_id": "doc_1"}))
    seen: list[tuple[int, int]] = []
    assert rec.client().upload(path, on_progress=lambda d, t: seen.append((d, t))) == {
        "document_id": "doc_1"
    }
    request = rec.requests[0]
    assert request.headers["content-type"].startswith("multipart/form-data")
    assert int(request.headers["content-length"]) == len(request.content)
    assert b'name="file"; filename="talk.wav"' in request.content
    assert bytes(300_000) in request.content
    assert len(seen) > 1 and seen[-1] == (300_004, 300_004)


def test_download_streams_to_a_folder_under_a_safe_name(tmp_path: Path) -> None:
    payload = bytes(range(256)) * 1000
    rec = Recorder(
        httpx.Response(
            200,
            content=payload,
            headers={"Content-Disposition": 'attachment; filename="../../evil.csv"'},
        )
    )
    seen: list[tuple[int, int]] = []
    path = rec.client().download("exp-1", tmp_path, on_progress=lambda d, t: seen.append((d, t)))
    assert path == tmp_path / "evil.csv"
    assert path.read_bytes() == payload
    assert seen[-1] == (len(payload), len(payload))
    assert list(tmp_path.iterdir()) == [path]


def test_wait_polls_until_a_terminal_status(sleeps: list[float]) -> None:
    rec = Recorder(
        httpx.Response(200, json={"status": "pending"}),
        httpx.Response(200, json={"status": "processing"}),
        httpx.Response(200, json={"status": "failed"}),
    )
    assert rec.client().wait("j1", poll_s=0.5)["status"] == "failed"
    assert sleeps == [0.5, 0.5]


def test_wait_gives_up_after_its_timeout() -> None:
    rec = Recorder(httpx.Response(200, json={"status": "processing"}))
    with pytest.raises(TimeoutError):
        rec.client().wait("j1", poll_s=0.01, timeout=0.05)


def test_the_sdk_against_a_real_server(live_server: LiveServer, subtitles: Path) -> None:
    with live_server.client() as client:
        doc = client.upload(subtitles)
        accepted = client.process(
            {
                "job_id": "sdk-1",
                "platform": "documents",
                "input_method": "upload",
                "uploaded_documents": [doc["document_id"]],
                "embedding_model": {"id": "local"},
                "vector_db": {"id": "chroma"},
            }
        )
        messages = list(client.monitor("sdk-1", accepted["websocket_url"]))
        assert messages[0]["type"] == "progress"
        assert messages[-1]["type"] == "completed"
        assert any(m.get("item", {}).get("stage") == "indexed" for m in messages)
        assert client.wait("sdk-1")["result"]["completed_items"] == 1

        # With the API key instead of the ticket: the finished job's terminal message.
        assert [m["type"] for m in client.monitor("sdk-1")] == ["completed"]
        with pytest.raises(ApiError):
            list(client.monitor("no-such-job"))

        hits = client.search("who polished the lens", job_id="sdk-1", top_k=1)["results"]
        assert hits and hits[0]["start_s"] is not None

        export_id = client.export("sdk-1", "json")["export_id"]
        while (state := client.export_status(export_id))["status"] != "completed":
            assert state["status"] != "failed", state
            time.sleep(0.1)
        path = client.download(export_id, live_server.app.state.ctx.settings.data_dir)
        assert path.stat().st_size == state["file_size"]
        assert "lighthouse" in path.read_text().lower()

        with pytest.raises(NotFoundError):
            client.status("no-such-job")
        with pytest.raises(ConflictError):
            client.cancel("sdk-1")
        assert client.jobs()["total"] == 1


def test_a_url_without_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="http"):
        Client("localhost:8000", "rc_x")


def test_retry_after_as_an_http_date_is_waited_out(sleeps: list[float]) -> None:
    from datetime import UTC, datetime, timedelta
    from email.utils import format_datetime

    from ragcast.client.errors import parse_retry_after

    now = datetime(2025, 1, 5, 12, 0, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(later, now=now) == 30.0
    assert parse_retry_after("soon") is None and parse_retry_after("-3") == 0.0
    rec = Recorder(httpx.Response(503, headers={"Retry-After": "2"}), httpx.Response(200, json={}))
    rec.client().preview("https://www.youtube.com/@x")
    assert sleeps == [2.0]
    assert rec.requests[0].url.params["page_size"] == "50"


def test_transcript_and_speaker_requests(sleeps: list[float]) -> None:
    rec = Recorder(
        httpx.Response(200, json={"job_id": "j 1", "segments": []}),
        httpx.Response(200, text="WEBVTT\n", headers={"content-type": "text/vtt"}),
        httpx.Response(200, json={"job_id": "j 1", "speakers": [], "updated_chunks": 0}),
        httpx.Response(200, json={"results": []}),
    )
    client = rec.client()
    assert client.transcript("j 1", 2) == {"job_id": "j 1", "segments": []}
    assert client.transcript("j 1", 2, format="vtt") == "WEBVTT\n"
    client.name_speakers("j 1", 2, {"SPEAKER_00": "Host", "SPEAKER_01": None})
    client.search("lens", speaker="Host")
    first, text, patch, search = rec.requests
    assert first.method == "GET"
    assert first.url.raw_path == b"/api/public/bulk/job/j%201/items/2/transcript?format=json"
    assert text.url.params["format"] == "vtt"
    assert patch.method == "PATCH"
    assert patch.url.raw_path == b"/api/public/bulk/job/j%201/items/2/speakers"
    assert json.loads(patch.content) == {"SPEAKER_00": "Host", "SPEAKER_01": None}
    assert json.loads(search.content)["speaker"] == "Host"


# -- a diarized job on a real server ---------------------------------------------------

DIARIZED = "sdk-talk"


@pytest.fixture(scope="module")
def talk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A real server with one finished two-speaker job (diarized, small chunks)."""
    with diarized_server(tmp_path_factory.mktemp("talk"), DIARIZED) as live:
        yield live


def test_a_diarized_transcript_in_every_format_and_named_speakers(talk: LiveServer) -> None:
    with talk.client() as client:
        body = client.transcript(DIARIZED, 0)
        assert body["job_id"] == DIARIZED and body["index"] == 0
        assert [s["label"] for s in body["speakers"]] == ["SPEAKER_00", "SPEAKER_01"]
        assert body["segments"]
        assert all(s["speaker"] in ("SPEAKER_00", "SPEAKER_01") for s in body["segments"])

        srt = client.transcript(DIARIZED, 0, format="srt")
        cues = [block.splitlines() for block in srt.strip().split("\n\n")]
        assert len(cues) == len([s for s in body["segments"] if s["text"].strip()])
        assert all(c[2].startswith(("SPEAKER_00: ", "SPEAKER_01: ")) for c in cues)
        vtt = client.transcript(DIARIZED, 0, format="vtt")
        assert vtt.startswith("WEBVTT") and "<v SPEAKER_0" in vtt
        txt = client.transcript(DIARIZED, 0, format="txt")
        assert "SPEAKER_00: " in txt and "country" in txt.lower()

        named = client.name_speakers(DIARIZED, 0, {"SPEAKER_00": "Host"})
        assert named["speakers"] == [
            {"label": "SPEAKER_00", "name": "Host"},
            {"label": "SPEAKER_01", "name": "SPEAKER_01"},
        ]
        assert named["updated_chunks"] >= 2
        body = client.transcript(DIARIZED, 0)
        assert body["speakers"][0] == {"label": "SPEAKER_00", "name": "Host", "recognised": None}
        assert {s["speaker"] for s in body["segments"]} == {"Host", "SPEAKER_01"}
        assert "\nHost: " in client.transcript(DIARIZED, 0, format="srt")

        hits = client.search("what can you do for your country", speaker="Host")["results"]
        assert hits and all(h["speaker"] == "Host" for h in hits)
        assert all("Host" in h["speakers"] for h in hits)
        others = client.search("what can you do for your country", speaker="SPEAKER_01")
        assert all(h["speaker"] == "SPEAKER_01" for h in others["results"])
        assert client.search("country", speaker="SPEAKER_00")["results"] == []  # renamed


def test_transcript_and_speaker_errors(talk: LiveServer) -> None:
    with talk.client() as client:
        with pytest.raises(ValidationError) as bad_format:
            client.transcript(DIARIZED, 0, format="xml")
        assert bad_format.value.status_code == 400
        assert bad_format.value.details["field"] == "format"
        with pytest.raises(ValidationError) as unknown:
            client.name_speakers(DIARIZED, 0, {"SPEAKER_09": "Guest"})
        assert unknown.value.status_code == 400 and "SPEAKER_09" in unknown.value.message
        with pytest.raises(NotFoundError):
            client.transcript(DIARIZED, 7)
        with pytest.raises(NotFoundError):
            client.name_speakers("no-such-job", 0, {"SPEAKER_00": "Host"})


# -- wait: the job's WebSocket, polling when there is none ------------------------------


class Counting(httpx.HTTPTransport):
    """The real network, recording each request's path; paths ending in ``refuse`` are
    answered 404 without reaching the server (a proxy that does not know them)."""

    def __init__(self, refuse: str | None = None) -> None:
        super().__init__()
        self.paths: list[str] = []
        self.refuse = refuse

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        if self.refuse is not None and request.url.path.endswith(self.refuse):
            return httpx.Response(404, json={"error": "not_found", "message": "no route"})
        return super().handle_request(request)

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


def start_job(live: LiveServer, job_id: str) -> None:
    """Upload the server's subtitles and start indexing them as ``job_id``."""
    with live.client() as client:
        srt = Path(live.app.state.ctx.settings.data_dir).parent / "notes.srt"
        doc = client.upload(srt)["document_id"]
        client.process(
            {
                "job_id": job_id,
                "platform": "documents",
                "input_method": "upload",
                "uploaded_documents": [doc],
                "embedding_model": {"id": "local"},
                "vector_db": {"id": "chroma"},
            }
        )


def closed_port() -> int:
    """A local port nothing listens on: connecting to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_wait_follows_the_socket_instead_of_polling(
    waiting_server: LiveServer, gate: threading.Event
) -> None:
    start_job(waiting_server, "follow-1")
    transport = Counting()
    threading.Timer(0.5, gate.set).start()
    with Client(waiting_server.url, waiting_server.key, transport=transport) as client:
        status = client.wait("follow-1", poll_s=0.05, timeout=120)
        # Once before the socket, once after its terminal message; polling every 0.05 s
        # through the held half second and the indexing would have read it dozens of times.
        assert transport.count("follow-1", "status") == 2
        assert transport.count("follow-1", "ticket") == 1
        assert status["status"] == "completed" and status["result"]["completed_items"] == 1
        assert status == client.status("follow-1")  # the status body, as before

        # A finished job: one status read, no socket.
        transport.paths.clear()
        assert client.wait("follow-1", poll_s=0.05)["status"] == "completed"
        assert transport.paths == ["/api/public/bulk/job/follow-1/status"]


def test_the_timeout_holds_while_following_the_socket(
    waiting_server: LiveServer, gate: threading.Event
) -> None:
    start_job(waiting_server, "follow-slow")
    transport = Counting()
    with Client(waiting_server.url, waiting_server.key, transport=transport) as client:
        started = time.monotonic()
        with pytest.raises(TimeoutError, match="follow-slow"):
            client.wait("follow-slow", poll_s=0.05, timeout=0.5)
        assert time.monotonic() - started < 5
    assert transport.count("follow-slow", "ticket") == 1
    assert transport.count("follow-slow", "status") == 2  # before the socket and at the end


def drop_after_the_first_message(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cut the socket's TCP connection once its first message arrived (a server restart)."""
    import websockets.sync.client

    real_connect = websockets.sync.client.connect

    def connect(*args: Any, **kwargs: Any) -> Any:
        connection = real_connect(*args, **kwargs)
        first = connection.recv

        def recv(*a: Any, **kw: Any) -> Any:
            message = first(*a, **kw)
            with contextlib.suppress(OSError):
                connection.socket.shutdown(socket.SHUT_RDWR)
            return message

        connection.recv = recv  # type: ignore[method-assign]
        return connection

    monkeypatch.setattr(websockets.sync.client, "connect", connect)


@pytest.mark.parametrize("failure", ["no ticket route", "socket refused", "socket dropped"])
def test_wait_polls_when_the_socket_fails(
    waiting_server: LiveServer,
    gate: threading.Event,
    monkeypatch: pytest.MonkeyPatch,
    failure: str,
) -> None:
    job_id = "fallback-" + failure.replace(" ", "-")
    start_job(waiting_server, job_id)
    transport = Counting(refuse="/ticket" if failure == "no ticket route" else None)
    client = Client(waiting_server.url, waiting_server.key, transport=transport)
    if failure == "socket refused":
        url = f"ws://127.0.0.1:{closed_port()}/api/public/bulk/ws/bulk-processing/{job_id}"
        monkeypatch.setattr(client, "ticket", lambda job_id: {"websocket_url": url})
    if failure == "socket dropped":
        drop_after_the_first_message(monkeypatch)
    threading.Timer(1.0, gate.set).start()
    with client:
        status = client.wait(job_id, poll_s=0.05, timeout=120)
    assert status["status"] == "completed" and status["result"]["completed_items"] == 1
    assert transport.count(job_id, "status") >= 5  # polled while the stages were held
