"""``POST /ask`` end to end over a real socket: real recordings, real models, and a real
local server speaking the OpenAI chat-completions API for the generative mode."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ragcast.api.app import create_app
from ragcast.api.ratelimit import BUCKETS, DEFAULT_LIMITS
from ragcast.auth import create_key
from ragcast.errors import ConfigurationError
from ragcast.settings import Settings
from tests.conftest import DATA, PREFIX, Api, make_settings, uvicorn_in_thread
from tests.providers.llms.fake_openai import FakeOpenAi

CLIPS = ("clip01.flac", "clip02.wav", "clip13.wav", "clip24.mp3")


@pytest.fixture(scope="module")
def llm_server() -> Iterator[FakeOpenAi]:
    fake = FakeOpenAi()
    with uvicorn_in_thread(fake.app()) as url:
        fake.url = f"{url}/v1"  # type: ignore[attr-defined]
        yield fake


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, llm_server: FakeOpenAi) -> Iterator[Api]:
    tmp = tmp_path_factory.mktemp("ask")
    settings = make_settings(
        tmp,
        llm_base_url=llm_server.url,  # type: ignore[attr-defined]
        llm_model="fake-chat-1",
        llm_backoff_s=0.01,
        llm_max_attempts=2,
    )
    app = create_app(settings)
    with app.state.ctx.db.session() as s:
        keys = {name: create_key(s, name)[0] for name in ("alice", "bob")}
    with uvicorn_in_thread(app) as url, httpx.Client(base_url=url, timeout=300) as client:
        api = Api(client=client, settings=settings, keys=keys)  # type: ignore[arg-type]
        api.app = app  # type: ignore[attr-defined]
        docs = [api.upload(DATA / name) for name in CLIPS]
        assert api.submit("talks", docs).status_code == 200
        assert api.wait("talks")["status"] == "completed"
        yield api


def ask(api: Api, user: str = "alice", **body: Any) -> httpx.Response:
    return api.client.post(f"{PREFIX}/ask", json=body, headers=api.h(user))


def answer_of(api: Api, **body: Any) -> dict[str, Any]:
    r = ask(api, **body)
    assert r.status_code == 200, r.text
    return dict(r.json())


def cited_numbers(text: str) -> set[int]:
    return {int(n) for n in re.findall(r"\[(\d+)\]", text)}


def test_an_extractive_answer_cites_the_recording(api: Api) -> None:
    body = answer_of(api, query="What should you ask about your country?", mode="extractive")
    assert body["answered"] is True and body["mode"] == "extractive" and body["model"] is None
    assert "what you can do for your country" in body["answer"].lower()
    first = body["citations"][0]
    assert first["title"] == "clip01.flac" and first["n"] == 1
    assert cited_numbers(body["answer"]) == {c["n"] for c in body["citations"]}
    assert first["start_s"] is not None and first["end_s"] > first["start_s"]
    assert first["deep_link"] and "#t=" in first["deep_link"] and first["media_url"]
    assert first["language"] == "en" and 0 < first["score"] <= 1
    german = answer_of(api, query="Wofür wurde der Raum genutzt?", mode="extractive")
    assert german["citations"][0]["title"] == "clip13.wav"
    assert "Leichenhalle" in german["answer"]


def test_a_question_across_languages_finds_the_recording(api: Api) -> None:
    body = answer_of(
        api, query="a lamp burning on a power pole at the edge of the campsite", mode="extractive"
    )
    assert body["answered"] and body["citations"][0]["title"] == "clip24.mp3"
    assert "電球" in body["answer"] or "電柱" in body["answer"]


def test_an_unanswerable_question_is_declined(api: Api) -> None:
    body = answer_of(api, query="How do I repot an orchid after it flowers?", mode="extractive")
    assert body == {
        "success": True,
        "answered": False,
        "answer": "I could not find that in your recordings.",
        "mode": "extractive",
        "model": None,
        "citations": [],
    }
    # another user has no recordings: nothing of alice's is ever used for bob
    bob = answer_of(api, user="bob", query="What should you ask about your country?")
    assert bob["answered"] is False and bob["citations"] == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"query": ""}, "query"),
        ({"query": "   "}, "query"),
        ({"query": "x", "top_k": 0}, "top_k"),
        ({"query": "x", "top_k": 21}, "top_k"),
        ({"query": "x", "colour": "red"}, "colour"),
        ({"query": "x", "mode": "poetic"}, "mode"),
        ({"query": "x", "stream": "yes"}, "stream"),
        ({"query": "x", "uploaded_after": "2024-13-45"}, "uploaded_after"),
        ({"top_k": 3}, "query"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(api: Api, body: dict[str, Any], field: str) -> None:
    r = ask(api, **body)
    assert r.status_code == 400, r.text
    error = r.json()
    assert error["success"] is False and error["error"] == "validation_error"
    assert error["details"]["field"] == field


def test_an_unknown_job_is_a_404(api: Api) -> None:
    r = ask(api, query="country", job_id="nope")
    assert r.status_code == 404 and r.json()["error"] == "not_found"


def events(response: httpx.Response) -> list[tuple[str, Any]]:
    """The server-sent events of a streamed answer, in order."""
    out: list[tuple[str, Any]] = []
    kind = ""
    for line in response.iter_lines():
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            out.append((kind, json.loads(line[6:])))
    return out


def stream(api: Api, **body: Any) -> list[tuple[str, Any]]:
    with api.client.stream("POST", f"{PREFIX}/ask", json=body, headers=api.h()) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert "x-ratelimit-limit" in r.headers
        return events(r)


def test_an_extractive_answer_streams_over_the_socket(api: Api) -> None:
    got = stream(
        api, query="Who is the apostle of the middle classes?", mode="extractive", stream=True
    )
    kinds = [k for k, _ in got]
    assert kinds[0] == "citations" and kinds[-1] == "done" and "delta" in kinds
    done = got[-1][1]
    assert "".join(v["text"] for k, v in got if k == "delta") == done["answer"]
    assert done["citations"][0]["title"] == "clip02.wav" and "Quilter" in done["answer"]
    assert got[0][1] == done["citations"]


def test_a_generative_answer_drops_citations_of_nothing(api: Api, llm_server: FakeOpenAi) -> None:
    body = answer_of(api, query="What should you ask about your country?")
    assert body["mode"] == "generative" and body["model"] == "fake-chat-1" and body["answered"]
    assert "[1]" in body["answer"] and "[9]" not in body["answer"]  # the model invented [9]
    assert [c["n"] for c in body["citations"]] == [1]
    assert body["citations"][0]["title"] == "clip01.flac"
    sent = llm_server.requests[-1]["messages"]
    assert "[1] clip01.flac (0:" in sent[1]["content"] and "Answer in English" in sent[0]["content"]
    declined = answer_of(api, query="What is unknowable about your country?")
    assert declined["answered"] is False and declined["citations"] == []


def test_a_generative_answer_streams_with_citations_checked(api: Api) -> None:
    got = stream(api, query="What should you ask about your country?", stream=True)
    assert got[0][0] == "citations" and got[-1][0] == "done"
    shown = "".join(v["text"] for k, v in got if k == "delta")
    assert "[1]" in shown and "[9]" not in shown
    assert got[-1][1]["citations"][0]["n"] == 1 and got[-1][1]["model"] == "fake-chat-1"


def test_an_llm_that_is_down_is_a_503_or_an_extractive_fallback(
    api: Api, llm_server: FakeOpenAi
) -> None:
    llm_server.unavailable = -1
    try:
        r = ask(api, query="What should you ask about your country?")
        assert r.status_code == 503, r.text
        assert r.json()["error"] == "upstream_unavailable" and r.json()["success"] is False
        body = answer_of(api, query="What should you ask about your country?", fallback=True)
        assert body["mode"] == "extractive" and body["answered"]
        assert body["citations"][0]["title"] == "clip01.flac"
        got = stream(api, query="What should you ask about your country?", stream=True)
        assert got[-1][0] == "error" and got[-1][1]["error"] == "upstream_unavailable"
        got = stream(
            api, query="What should you ask about your country?", stream=True, fallback=True
        )
        assert got[-1][0] == "done" and got[-1][1]["mode"] == "extractive"
    finally:
        llm_server.unavailable = 0


def test_extractive_is_the_default_without_an_llm(api: Api) -> None:
    assert Settings().llm_base_url is None  # none is configured by default
    state = api.app.state  # type: ignore[attr-defined]
    llm, state.llm = state.llm, None
    try:
        body = answer_of(api, query="What should you ask about your country?")
        assert body["mode"] == "extractive" and body["answered"]
        r = ask(api, query="country", mode="generative")
        assert r.status_code == 400 and r.json()["details"]["field"] == "mode"
    finally:
        state.llm = llm


def test_an_llm_setting_that_points_nowhere_stops_the_start(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = make_settings(tmp_path, llm_base_url=f"http://127.0.0.1:{port}/v1")
    with pytest.raises(ConfigurationError, match="RAGCAST_LLM_BASE_URL"):
        create_app(settings)


def test_the_ask_bucket_limits_answers(api: Api) -> None:
    assert "ask" in BUCKETS and DEFAULT_LIMITS["ask"] == "100/hour"
    assert api.settings.rate_limit_ask == "100/hour"
    r = ask(api, query="country", mode="extractive")
    assert r.headers["X-RateLimit-Limit"] == "100"
