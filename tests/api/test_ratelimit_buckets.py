"""Rate limits that fit a self-hosted install: every 429 names its bucket, its limit and
the setting that raises it; ``RAGCAST_RATE_LIMITS=off`` and the admin exemption."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from ragcast.api.errors import rate_limited
from ragcast.api.ratelimit import BUCKETS, DEFAULT_LIMITS, RateLimiter, RateLimitExceeded
from ragcast.settings import Settings
from tests.conftest import PREFIX, Api


def _refusal(limiter: RateLimiter, bucket: str, user: int = 7) -> RateLimitExceeded:
    """Fill ``bucket`` of ``user``; the refusal of the next request."""
    while True:
        try:
            limiter.hit(bucket, user)
        except RateLimitExceeded as exc:
            return exc


@pytest.mark.parametrize("bucket", BUCKETS)
def test_every_buckets_429_names_its_bucket_limit_and_setting(bucket: str) -> None:
    limiter = RateLimiter({bucket: "2/hour"})
    exc = _refusal(limiter, bucket)
    setting = f"RAGCAST_RATE_LIMIT_{bucket.upper()}"
    answer = rate_limited(exc)
    body = json.loads(bytes(answer.body))
    assert answer.status_code == 429
    assert body["error"] == "rate_limit_exceeded" and body["success"] is False
    assert body["details"] == {"bucket": bucket, "limit": 2, "window_s": 3600, "setting": setting}
    assert body["message"].startswith("Too many requests: 2 ")
    assert f"per hour ({setting}). Try again in " in body["message"]
    assert isinstance(body["retry_after"], int) and 0 < body["retry_after"] <= 3600
    assert answer.headers["Retry-After"] == str(body["retry_after"])
    assert answer.headers["X-RateLimit-Limit"] == "2"
    assert answer.headers["X-RateLimit-Remaining"] == "0"


def test_the_message_says_the_period_and_the_noun() -> None:
    exc = _refusal(RateLimiter({"export": "10/hour"}), "export")
    assert exc.message.startswith(
        "Too many requests: 10 exports per hour (RAGCAST_RATE_LIMIT_EXPORT)."
    )
    exc = _refusal(RateLimiter({"read": "3/2 minutes"}), "read")
    assert "3 reads per 2 minutes (RAGCAST_RATE_LIMIT_READ)" in exc.message
    assert exc.window_s == 120


def test_the_contracts_defaults_stay() -> None:
    settings = Settings()
    assert (settings.rate_limit_process, settings.rate_limit_export, settings.rate_limit_read) == (
        "20/hour",
        "10/hour",
        "1000/hour",
    )
    assert settings.rate_limits == "on" and settings.rate_limit_exempt_admins is False
    assert DEFAULT_LIMITS["process"] == "20/hour" and DEFAULT_LIMITS["export"] == "10/hour"


def _error(response: Any) -> dict[str, Any]:
    assert response.status_code == 429, response.text
    body: dict[str, Any] = response.json()
    return body


def test_a_routes_429_names_its_bucket(api_factory: Callable[..., Api]) -> None:
    api = api_factory(rate_limit_read="2/minute", rate_limit_export="1/hour")
    for _ in range(2):
        assert api.client.get(f"{PREFIX}/jobs", headers=api.h()).status_code == 200
    refused = api.client.get(f"{PREFIX}/jobs", headers=api.h())
    body = _error(refused)
    assert body["details"] == {
        "bucket": "read",
        "limit": 2,
        "window_s": 60,
        "setting": "RAGCAST_RATE_LIMIT_READ",
    }
    assert refused.headers["X-RateLimit-Limit"] == "2"
    assert refused.headers["Retry-After"] == str(body["retry_after"])

    export = {"job_id": "no-such-job", "format": "json"}
    assert api.client.post(f"{PREFIX}/export", json=export, headers=api.h()).status_code == 404
    body = _error(api.client.post(f"{PREFIX}/export", json=export, headers=api.h()))
    assert body["details"]["bucket"] == "export"
    assert body["details"]["setting"] == "RAGCAST_RATE_LIMIT_EXPORT"
    assert "1 exports per hour" in body["message"]


def test_off_turns_every_limit_off(api_factory: Callable[..., Api]) -> None:
    api = api_factory(rate_limit_read="2/minute", rate_limits="off")
    answers = [api.client.get(f"{PREFIX}/jobs", headers=api.h()) for _ in range(5)]
    assert [r.status_code for r in answers] == [200] * 5
    # The headers still report the limit, with nothing spent of it.
    assert {r.headers["X-RateLimit-Remaining"] for r in answers} == {"2"}
    assert answers[0].headers["X-RateLimit-Limit"] == "2"
    limiter = RateLimiter({"process": "1/hour"}, enabled=False)
    assert [limiter.hit("process", 1).remaining for _ in range(3)] == [1, 1, 1]


def test_off_is_the_only_other_value() -> None:
    with pytest.raises(ValueError):
        Settings(rate_limits="maybe")


def test_admins_are_exempt_only_when_the_setting_says_so(api_factory: Callable[..., Api]) -> None:
    counted = api_factory(rate_limit_read="2/minute")
    codes = [
        counted.client.get(f"{PREFIX}/jobs", headers=counted.h("root")).status_code
        for _ in range(3)
    ]
    assert codes == [200, 200, 429]

    exempt = api_factory(rate_limit_read="2/minute", rate_limit_exempt_admins=True)
    codes = [
        exempt.client.get(f"{PREFIX}/jobs", headers=exempt.h("root")).status_code for _ in range(4)
    ]
    assert codes == [200] * 4
    # Ordinary users are still counted.
    codes = [exempt.client.get(f"{PREFIX}/jobs", headers=exempt.h()).status_code for _ in range(3)]
    assert codes == [200, 200, 429]


def test_a_request_not_counted_has_nothing_to_refund() -> None:
    import asyncio

    limiter = RateLimiter({"process": "1/hour"}, exempt_admins=True)

    async def run() -> tuple[int, int]:
        counted = await limiter.acount("process", 3, admin=True)
        after = await limiter.arefund(counted)
        return after.remaining, (await limiter.ahit("process", 3)).remaining

    assert asyncio.run(run()) == (1, 0)


def test_the_sdk_exception_carries_the_bucket_and_setting() -> None:
    from ragcast.client import RateLimitError
    from ragcast.client.errors import error_from_parts

    exc = _refusal(RateLimiter({"export": "10/hour"}), "export")
    answer = rate_limited(exc)
    error = error_from_parts(429, bytes(answer.body), dict(answer.headers))
    assert isinstance(error, RateLimitError)
    assert (error.bucket, error.limit, error.window_s) == ("export", 10, 3600)
    assert error.setting == "RAGCAST_RATE_LIMIT_EXPORT"
    assert error.retry_after == exc.retry_after and error.message == exc.message
    # A server that does not say which limit: the attributes are None.
    bare = error_from_parts(429, b'{"error": "rate_limit_exceeded", "message": "slow"}', {})
    assert isinstance(bare, RateLimitError) and bare.bucket is None and bare.limit is None
