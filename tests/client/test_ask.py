"""``ask`` and ``ask_stream`` in both SDK clients, ``ragcast ask`` and the MCP ``ask``
tool, against a real server (over a socket) holding one indexed subtitle file."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ragcast.cli import app as cli_app
from ragcast.client import AsyncClient, ValidationError
from tests.client.conftest import LiveServer, serve_in_thread
from tests.conftest import make_settings

JOB = "ask-lighthouse"
SRT = """1
00:00:01,000 --> 00:00:04,000
Morning fog rolled over the quiet fishing village while the boats waited at anchor.

2
00:01:33,000 --> 00:01:38,000
The keeper of Skerryvore lit the great lamp with seven wicks every evening at dusk.
"""
QUESTION = "How many wicks did the keeper of Skerryvore light?"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("ask-clients")
    srt = tmp / "skerryvore.srt"
    srt.write_text(SRT)
    with serve_in_thread(make_settings(tmp / "server")) as server, server.client() as client:
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
        assert client.wait(JOB, poll_s=0.5, timeout=240)["status"] == "completed"
        yield server


def check_answer(body: dict[str, Any]) -> None:
    assert body["answered"] and body["mode"] == "extractive" and body["model"] is None
    assert "seven wicks" in body["answer"] and body["answer"].endswith("[1]")
    cited = body["citations"][0]
    assert cited["n"] == 1 and cited["title"] == "skerryvore.srt" and cited["start_s"] == 93.0


def test_the_sync_client_asks_and_streams(live: LiveServer) -> None:
    with live.client() as client:
        check_answer(client.ask(QUESTION, job_id=JOB))
        events = list(client.ask_stream(QUESTION, job_id=JOB, top_k=3))
        assert [e["event"] for e in events][0] == "citations" and events[-1]["event"] == "done"
        check_answer(events[-1]["data"])
        text = "".join(e["data"]["text"] for e in events if e["event"] == "delta")
        assert text == events[-1]["data"]["answer"]
        nothing = client.ask("How do I repot an orchid after it flowers?", job_id=JOB)
        assert nothing["answered"] is False and nothing["citations"] == []
        with pytest.raises(ValidationError) as bad:
            client.ask(QUESTION, top_k=50)
        assert bad.value.details["field"] == "top_k"


def test_the_async_client_asks_and_streams(live: LiveServer) -> None:
    async def run() -> None:
        async with AsyncClient(live.url, live.key) as client:
            check_answer(await client.ask(QUESTION, job_id=JOB, mode="extractive"))
            events = [e async for e in client.ask_stream(QUESTION, job_id=JOB)]
            assert events[-1]["event"] == "done"
            check_answer(events[-1]["data"])

    asyncio.run(run())


def test_ragcast_ask_streams_and_lists_its_citations(
    live: LiveServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("RAGCAST_SERVER", "RAGCAST_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    env = {"RAGCAST_DATA_DIR": str(tmp_path / "cli"), "RAGCAST_PRELOAD_MODELS": "false"}
    remote = ["--server", live.url, "--api-key", live.key]
    result = CliRunner().invoke(cli_app, ["ask", QUESTION, "--job-id", JOB, *remote], env=env)
    assert result.exit_code == 0, result.output
    assert "seven wicks" in result.stdout and "[1] skerryvore.srt 1:33-1:38" in result.stdout
    as_json = CliRunner().invoke(cli_app, ["ask", QUESTION, "--json", *remote], env=env)
    assert as_json.exit_code == 0 and '"answered": true' in as_json.stdout


def test_the_mcp_ask_tool_answers_with_citations(live: LiveServer) -> None:
    pytest.importorskip("mcp.server.mcpserver", reason="needs the integrations extra (mcp 2.x)")
    from tests.integrations.test_mcp import session, structured

    async def run() -> dict[str, Any]:
        async with session(f"{live.url}/mcp", live.key) as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            assert "ask" in tools
            return structured(await client.call_tool("ask", {"query": QUESTION}))

    body = asyncio.run(run())
    assert body["answered"] and "seven wicks" in body["answer"]
    assert body["citations"][0]["start_s"] == 93.0
