"""The MCP server, driven by the official SDK's own clients: streamable HTTP against
``/mcp`` of a real server (with the API's bearer keys), and stdio through ``ragcast mcp``."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("mcp.server.mcpserver", reason="needs the integrations extra (mcp 2.x)")

import httpx2  # noqa: E402 - after the skip: installed with the mcp SDK
from fastapi.testclient import TestClient  # noqa: E402
from mcp import Client, StdioServerParameters  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402
from mcp_types import CallToolResult, TextContent  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from ragcast import cli  # noqa: E402
from ragcast.api.app import create_app  # noqa: E402
from ragcast.auth import create_key  # noqa: E402
from ragcast.client import ValidationError  # noqa: E402
from tests.client.conftest import LiveServer, serve_in_thread  # noqa: E402
from tests.conftest import DATA, make_settings  # noqa: E402

JOB = "mcp-cartography"
SENTENCE = "The cartographer of Quillmarsh inked seventeen forgotten harbours onto vellum."
SRT = f"""1
00:00:01,000 --> 00:00:04,000
Morning fog rolled over the quiet fishing village while the boats waited at anchor.

2
00:00:05,000 --> 00:00:09,000
Nets were mended on the pier and gulls argued about scraps near the market stalls.

3
00:02:03,500 --> 00:02:08,000
{SENTENCE}
"""
TOOLS = {"search", "list_jobs", "job_status", "process_urls"}


@dataclass
class Served:
    """A live server with alice's finished job, and a key of bob."""

    live: LiveServer
    bob: str

    @property
    def mcp_url(self) -> str:
        """The MCP endpoint."""
        return f"{self.live.url}/mcp"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A real server (workers on) where alice indexed one subtitle file."""
    tmp = tmp_path_factory.mktemp("mcp")
    srt = tmp / "quillmarsh.srt"
    srt.write_text(SRT)
    settings = make_settings(tmp / "server", allow_loopback_fetch=True, fetch_pause_s=0.0)
    with serve_in_thread(settings) as live, live.client() as client:
        with live.app.state.ctx.db.session() as s:
            bob, _ = create_key(s, "bob")
        doc = client.upload(srt)["document_id"]
        client.process(
            {
                "job_id": JOB,
                "platform": "documents",
                "input_method": "upload",
                "uploaded_documents": [doc],
                "embedding_model": {"id": "local"},
                "vector_db": {"id": "chroma"},
                "settings": {"chunkSize": 24, "chunkOverlap": 0},
            }
        )
        status = client.wait(JOB, poll_s=0.5, timeout=240)
        assert status["status"] == "completed", status
        yield Served(live, bob)


@asynccontextmanager
async def session(url: str, key: str, mode: str = "auto") -> AsyncIterator[Client]:
    """An MCP client over streamable HTTP that sends ``key`` as its bearer; ``legacy``
    mode speaks the initialize handshake, ``auto`` the newest revision both know."""
    headers = {"Authorization": f"Bearer {key}"}
    timeout = httpx2.Timeout(30.0, read=300.0)
    async with httpx2.AsyncClient(headers=headers, timeout=timeout) as http:
        transport = streamable_http_client(url, http_client=http)
        async with Client(transport, mode=mode) as client:
            yield client


def structured(result: CallToolResult) -> dict[str, Any]:
    """The structured answer of a successful tool call."""
    assert not result.is_error, result.content
    assert isinstance(result.structured_content, dict)
    return result.structured_content


def error_text(result: CallToolResult) -> str:
    """The message of a failed tool call."""
    assert result.is_error, result
    return " ".join(c.text for c in result.content if isinstance(c, TextContent))


def assert_found(answer: dict[str, Any]) -> None:
    """The search found the sentence's chunk, with its time span and provenance."""
    hit = answer["results"][0]
    assert "seventeen forgotten harbours" in hit["text"]
    assert hit["start_s"] == pytest.approx(123.5) and hit["end_s"] == pytest.approx(128.0)
    assert hit["job_id"] == JOB and hit["content_id"]
    assert hit["source"] == "quillmarsh.srt" and hit["score"] > 0
    assert hit["deep_link"] is None  # an upload has no URL to open at a time
    assert hit["media_url"] is None  # and a subtitle file no recording to play


async def test_tools_search_and_jobs_over_streamable_http(served: Served) -> None:
    async with session(served.mcp_url, served.live.key) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert TOOLS <= set(tools)
        search_args = set(tools["search"].input_schema["properties"])
        assert {"query", "top_k", "mode", "job_id", "speaker", "uploaded_after"} <= search_args

        found = await client.call_tool("search", {"query": "Quillmarsh harbours", "top_k": 3})
        assert_found(structured(found))
        # The text content an agent reads is the same answer, as JSON.
        first = found.content[0]
        assert isinstance(first, TextContent) and "Quillmarsh" in json.loads(first.text)["query"]

        lexical = await client.call_tool(
            "search", {"query": "cartographer vellum", "mode": "lexical", "job_id": JOB}
        )
        assert_found(structured(lexical))

        jobs = structured(await client.call_tool("list_jobs", {"limit": 5}))
        assert JOB in [j["job_id"] for j in jobs["jobs"]] and jobs["total"] >= 1
        status = structured(await client.call_tool("job_status", {"job_id": JOB}))
        assert status["status"] == "completed" and status["result"]["completed_items"] == 1


async def test_an_api_error_is_a_tool_error_with_the_apis_message(served: Served) -> None:
    bad = {"platform": "youtube", "urls": ["https://example.com/not-a-video"]}
    with served.live.client() as rest, pytest.raises(ValidationError) as refused:
        rest.process(
            {
                "platform": "youtube",
                "input_method": "urls",
                "pasted_urls": bad["urls"],
                "embedding_model": {"id": "local"},
                "vector_db": {"id": "chroma"},
            }
        )
    async with session(served.mcp_url, served.live.key) as client:
        result = await client.call_tool("process_urls", bad)
        assert refused.value.message in error_text(result)
        missing = await client.call_tool("job_status", {"job_id": "no-such-job"})
        assert "not found" in error_text(missing).lower()


@pytest.mark.parametrize("header", [None, "Bearer rc_not-a-real-key-at-all", "Basic abc"])
def test_mcp_needs_a_valid_api_key(served: Served, header: str | None) -> None:
    headers = {"Accept": "application/json, text/event-stream"}
    if header is not None:
        headers["Authorization"] = header
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    r = httpx.post(served.mcp_url, json=body, headers=headers)
    assert r.status_code == 401, r.text
    assert r.headers["www-authenticate"] == "Bearer"
    assert r.json()["success"] is False and r.json()["error"] == "unauthorized"


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_a_key_acts_as_its_own_user_only(served: Served, mode: str) -> None:
    async with session(served.mcp_url, served.live.key, mode) as client:
        mine = structured(await client.call_tool("list_jobs", {"status": "completed"}))
        assert JOB in [j["job_id"] for j in mine["jobs"]]
    async with session(served.mcp_url, served.bob, mode) as client:
        jobs = structured(await client.call_tool("list_jobs", {}))
        assert jobs["jobs"] == [] and jobs["total"] == 0
        status = await client.call_tool("job_status", {"job_id": JOB})
        assert "not found" in error_text(status).lower()
        found = structured(await client.call_tool("search", {"query": "Quillmarsh harbours"}))
        assert found["results"] == []
        scoped = await client.call_tool("search", {"query": "Quillmarsh", "job_id": JOB})
        assert scoped.is_error or structured(scoped)["results"] == []


async def finished(client: Client, job_id: str, timeout: float = 120) -> dict[str, Any]:
    """Poll ``job_status`` until the job has its result."""
    deadline = time.monotonic() + timeout
    while True:
        status = structured(await client.call_tool("job_status", {"job_id": job_id}))
        if status["result"] is not None:
            return status
        assert time.monotonic() < deadline, status
        await asyncio.sleep(0.3)


@pytest.fixture
def captioned() -> Iterator[str]:
    """A YouTube video (a yt-dlp fixture on a local media server) with captions."""
    pytest.importorskip("yt_dlp", reason="needs the platforms extra")
    if not (DATA / "clip01.flac").exists():
        pytest.skip("needs the shared recordings")
    from ragcast.sources import ytdlp
    from tests.sources.fixtures import FIXTURES, FixtureIE, MediaServer, register, video_info

    media = MediaServer()
    url = "https://www.youtube.com/watch?v=capt0000001"
    register(
        url,
        video_info(
            media, "youtube", "capt0000001", "clip01.flac", title="Inaugural address", captions=True
        ),
    )
    ytdlp.EXTRA_EXTRACTORS.append(FixtureIE)
    try:
        yield url
    finally:
        ytdlp.EXTRA_EXTRACTORS.remove(FixtureIE)
        FIXTURES.pop(url, None)
        media.close()


async def test_process_urls_starts_a_job_whose_hits_deep_link(
    served: Served, captioned: str
) -> None:
    settings = {"chunkSize": 16, "chunkOverlap": 0}
    args = {"platform": "youtube", "urls": [captioned], "job_id": "mcp-urls", "settings": settings}
    async with session(served.mcp_url, served.live.key) as client:
        started = structured(await client.call_tool("process_urls", args))
        assert started["job_id"] == "mcp-urls" and started["status"] != "failed"
        status = await finished(client, "mcp-urls")
        assert status["status"] == "completed", status
        query = {"query": "ask what you can do for your country", "job_id": "mcp-urls", "top_k": 1}
        hit = structured(await client.call_tool("search", query))["results"][0]
    assert hit["start_s"] == 93.0 and hit["title"] == "Inaugural address"
    assert hit["deep_link"] == f"{captioned}&t=93s" and hit["platform"] == "youtube"


async def test_ragcast_mcp_over_stdio(served: Served) -> None:
    ragcast = Path(sys.executable).with_name("ragcast")
    params = StdioServerParameters(
        command=str(ragcast),
        args=["mcp", "--server", served.live.url, "--api-key", served.live.key],
    )
    async with Client(params) as client:
        assert TOOLS <= {t.name for t in (await client.list_tools()).tools}
        found = await client.call_tool("search", {"query": "Quillmarsh harbours", "top_k": 3})
        assert_found(structured(found))


async def test_a_recordings_hits_link_to_it_where_the_caller_reached_the_server(
    served: Served,
) -> None:
    recording = DATA / "clip02.wav"
    with served.live.client() as api:
        doc = api.upload(recording)["document_id"]
        api.process(
            {
                "job_id": "mcp-audio",
                "platform": "documents",
                "input_method": "upload",
                "uploaded_documents": [doc],
                "embedding_model": {"id": "local"},
                "vector_db": {"id": "chroma"},
                "settings": {"chunkSize": 64, "chunkOverlap": 8, "language": "en"},
            }
        )
        assert api.wait("mcp-audio", poll_s=0.5, timeout=240)["status"] == "completed"
    query = {"query": "the apostle of the middle classes", "job_id": "mcp-audio", "top_k": 1}
    async with session(served.mcp_url, served.live.key) as client:
        hit = structured(await client.call_tool("search", query))["results"][0]
    # the in-process call is made on the caller's origin: the link is one it can follow
    media = f"{served.live.url}/api/public/bulk/media/{hit['content_id']}?token="
    assert hit["media_url"].startswith(media), hit
    assert hit["deep_link"] == f"{hit['media_url']}#t={int(hit['start_s'])}"
    async with httpx.AsyncClient() as http:  # a browser's <audio>: no key
        played = await http.get(hit["media_url"])
    assert played.status_code == 200 and played.headers["content-type"] == "audio/wav"
    assert played.content == recording.read_bytes()


def test_without_the_sdk_the_api_has_no_mcp_and_the_command_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "mcp.server.mcpserver", None)  # as if not installed
    app = create_app(make_settings(tmp_path))
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        assert client.post("/mcp", json={}).status_code == 404
    result = CliRunner().invoke(cli.app, ["mcp"])
    assert result.exit_code == 2
    assert "ragcast[integrations]" in result.output
