"""The shared retrying client, against a real local server."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from ragcast.errors import ItemError, TransientError
from ragcast.providers.embedders.http import JsonClient, RetryPolicy, retry_after_seconds
from tests.providers.embedders.conftest import Sleeps, config
from tests.providers.embedders.fake_jina import FakeJina

BODY = {"model": "jina-embeddings-v4", "task": "text-matching", "input": [{"text": "hello"}]}


def client(fake: FakeJina, sleeps: Sleeps | None = None, attempts: int = 4) -> JsonClient:
    headers = {"Authorization": f"Bearer {fake.api_key}"}
    cfg = config(fake.url, fake.api_key, attempts)
    if sleeps is None:
        return JsonClient("Jina", cfg, headers)
    return JsonClient("Jina", cfg, headers, sleep=sleeps)


def test_retry_after_takes_seconds_and_http_dates() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds(" 0 ") == 0.0
    assert retry_after_seconds(format_datetime(now + timedelta(seconds=7), usegmt=True), now) == 7
    assert retry_after_seconds(format_datetime(now - timedelta(seconds=7), usegmt=True), now) == 0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


def test_backoff_grows_and_is_capped() -> None:
    policy = RetryPolicy(attempts=10, backoff_s=1.0, max_backoff_s=4.0)
    waits = [policy.backoff(n) for n in range(6)]
    assert 0.5 <= waits[0] <= 1.0 and 1.0 <= waits[1] <= 2.0
    assert all(w <= 4.0 for w in waits)


def test_5xx_is_retried_then_succeeds(fake_jina: FakeJina, sleeps: Sleeps) -> None:
    fake_jina.fail(500, times=2)
    answer = client(fake_jina, sleeps).post("/v1/embeddings", BODY)
    assert len(answer["data"]) == 1
    assert len(fake_jina.requests) == 3
    assert len(sleeps) == 2 and sleeps[1] >= sleeps[0] * 0.5


def test_429_waits_at_least_retry_after(fake_jina: FakeJina) -> None:
    fake_jina.fail(429, retry_after="1")
    client(fake_jina).post("/v1/embeddings", BODY)
    first, second = fake_jina.requests
    assert second.at - first.at >= 1.0  # the real clock: the client waited the header out


def test_retry_after_as_http_date_is_honoured(fake_jina: FakeJina, sleeps: Sleeps) -> None:
    when = datetime.now(UTC) + timedelta(seconds=3)
    fake_jina.fail(503, retry_after=format_datetime(when, usegmt=True))
    client(fake_jina, sleeps).post("/v1/embeddings", BODY)
    assert len(sleeps) == 1 and 1.0 <= sleeps[0] <= 3.0


def test_a_retry_after_beyond_the_cap_goes_back_to_the_runner(
    fake_jina: FakeJina, sleeps: Sleeps
) -> None:
    fake_jina.fail(429, retry_after="600")
    with pytest.raises(TransientError) as caught:
        client(fake_jina, sleeps).post("/v1/embeddings", BODY)
    assert caught.value.retry_after == 600
    assert sleeps == [] and len(fake_jina.requests) == 1


def test_giving_up_raises_a_transient_error(fake_jina: FakeJina, sleeps: Sleeps) -> None:
    fake_jina.fail(502, times=10)
    with pytest.raises(TransientError, match="HTTP 502.*after 3 attempts"):
        client(fake_jina, sleeps, attempts=3).post("/v1/embeddings", BODY)
    assert len(fake_jina.requests) == 3


def test_a_4xx_fails_with_the_providers_own_message(fake_jina: FakeJina, sleeps: Sleeps) -> None:
    fake_jina.fail(400, body={"detail": "Insufficient balance on this API key"})
    with pytest.raises(ItemError, match="HTTP 400.*Insufficient balance on this API key"):
        client(fake_jina, sleeps).post("/v1/embeddings", BODY)
    assert len(fake_jina.requests) == 1 and sleeps == []


def test_validation_details_and_google_errors_are_read(fake_jina: FakeJina, sleeps: Sleeps) -> None:
    with pytest.raises(ItemError, match="Extra inputs are not permitted: colour"):
        client(fake_jina, sleeps).post("/v1/embeddings", {**BODY, "colour": "red"})
    fake_jina.fail(403, body={"error": {"code": 403, "message": "Permission denied"}})
    with pytest.raises(ItemError, match="Permission denied"):
        client(fake_jina, sleeps).post("/v1/embeddings", BODY)


def test_connection_errors_are_retried_then_transient(sleeps: Sleeps) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    refused = JsonClient("Jina", config(f"http://127.0.0.1:{port}", "k", 3), {}, sleep=sleeps)
    with pytest.raises(TransientError, match="unreachable"):
        refused.post("/v1/embeddings", BODY)
    assert len(sleeps) == 2
