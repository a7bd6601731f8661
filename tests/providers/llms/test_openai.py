"""The OpenAI-compatible client against a real local server speaking the API."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from ragcast.errors import ConfigurationError
from ragcast.providers.embedders.http import RetryPolicy
from ragcast.providers.llms import LlmUnavailable, Message, llm_from_settings
from ragcast.providers.llms.openai import OpenAiConfig, OpenAiLlm
from tests.conftest import make_settings, uvicorn_in_thread
from tests.providers.llms.fake_openai import FakeOpenAi

PROMPT = [
    Message("system", "Answer from the passages."),
    Message("user", "Passages:\n\n[1] talk (0:00-0:05)\nHello there. Bye.\n\nQuestion: hi?"),
]


@pytest.fixture(scope="module")
def fake() -> Iterator[tuple[FakeOpenAi, str]]:
    server = FakeOpenAi()
    with uvicorn_in_thread(server.app()) as url:
        yield server, f"{url}/v1"


def llm(url: str, attempts: int = 3, max_backoff_s: float = 5.0) -> OpenAiLlm:
    policy = RetryPolicy(attempts=attempts, backoff_s=0.01, max_backoff_s=max_backoff_s)
    return OpenAiLlm(OpenAiConfig(url, "fake-chat-1", "sk-test", timeout_s=10, retry=policy))


def test_complete_and_stream_read_the_answer(fake: tuple[FakeOpenAi, str]) -> None:
    server, url = fake
    client = llm(url)
    want = "The recording says: Hello there. [1] and more [9]."
    assert client.complete(PROMPT) == want
    sent = server.requests[-1]
    assert sent["model"] == "fake-chat-1" and sent["messages"][0]["role"] == "system"
    pieces = list(client.stream(PROMPT))
    assert len(pieces) > 5 and "".join(pieces) == want
    assert server.requests[-1]["stream"] is True


def test_a_503_is_retried_honouring_retry_after(fake: tuple[FakeOpenAi, str]) -> None:
    server, url = fake
    slept: list[float] = []
    client = llm(url)
    client._sleep = slept.append
    server.unavailable, server.retry_after = 2, "1"
    assert client.complete(PROMPT).startswith("The recording says")
    assert slept == [1.0, 1.0]
    server.unavailable = 1
    assert "".join(client.stream(PROMPT)).startswith("The recording says")


def test_an_llm_that_stays_down_is_unavailable(fake: tuple[FakeOpenAi, str]) -> None:
    server, url = fake
    server.unavailable, server.retry_after = -1, "0"
    try:
        with pytest.raises(LlmUnavailable, match="HTTP 503.*after 2 tries"):
            llm(url, attempts=2).complete(PROMPT)
        with pytest.raises(LlmUnavailable, match="HTTP 503"):
            list(llm(url, attempts=2).stream(PROMPT))
        server.retry_after = "3600"  # longer than anyone waits for an answer: at once
        before = len(server.requests)
        with pytest.raises(LlmUnavailable, match="retry after 3600s"):
            llm(url, attempts=5).complete(PROMPT)
        assert len(server.requests) == before + 1
    finally:
        server.unavailable, server.retry_after = 0, "0"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_server_that_is_not_there_is_unavailable() -> None:
    url = f"http://127.0.0.1:{_free_port()}/v1"
    with pytest.raises(LlmUnavailable, match="unreachable: ConnectError"):
        llm(url, attempts=2).complete(PROMPT)


def test_an_llm_setting_that_points_nowhere_is_refused(tmp_path: Path) -> None:
    assert llm_from_settings(make_settings(tmp_path)) is None
    url = f"http://127.0.0.1:{_free_port()}/v1"
    with pytest.raises(ConfigurationError, match="RAGCAST_LLM_BASE_URL=.*cannot be reached"):
        llm_from_settings(make_settings(tmp_path, llm_base_url=url))
    with pytest.raises(ConfigurationError, match="not an http"):
        llm_from_settings(make_settings(tmp_path, llm_base_url="ftp://x/v1"))


def test_settings_build_a_client(tmp_path: Path, fake: tuple[FakeOpenAi, str]) -> None:
    _, url = fake
    built = llm_from_settings(make_settings(tmp_path, llm_base_url=url, llm_model="m7"))
    assert built is not None and built.name == "m7"
    assert built.complete(PROMPT).endswith("[9].")
    built.close()
