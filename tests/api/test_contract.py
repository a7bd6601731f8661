"""The public contract: shapes, status codes, headers, validation, auth and isolation."""

from __future__ import annotations

import io
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import PREFIX, Api, job_body

TEXT = (
    "Ragcast turns recordings into a searchable index. The lighthouse keeper counted "
    "forty-two ships in the storm. Each chunk keeps its timestamps."
)


@pytest.fixture
def doc(api: Api, tmp_path: Path) -> str:
    """A small text document uploaded by alice."""
    path = tmp_path / "notes.txt"
    path.write_text(TEXT)
    return api.upload(path)


def _error(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    assert body["success"] is False
    assert body["error"] == code
    assert isinstance(body["message"], str) and body["message"]
    return body


def test_process_answers_the_contract(api: Api, doc: str) -> None:
    r = api.submit("bulk-1", [doc])
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"success", "job_id", "message", "websocket_url", "estimated_time"}
    assert body["success"] is True and body["job_id"] == "bulk-1"
    assert body["message"] == "Bulk processing started successfully"
    assert body["websocket_url"].startswith("ws://testserver/api/public/bulk/ws/bulk-processing/")
    assert "?token=" in body["websocket_url"]
    for name in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "X-Request-ID"):
        assert name in r.headers
    assert r.headers["X-RateLimit-Limit"] == "20"
    status = api.wait("bulk-1")
    assert set(status) == {
        "job_id",
        "status",
        "progress",
        "stage",
        "content_processed",
        "total_content",
        "embeddings",
        "error",
        "result",
    }
    assert status["status"] == "completed" and status["progress"] == 100
    assert status["stage"] == "Processing completed successfully!"
    assert status["result"] == {
        "total_items": 1,
        "completed_items": 1,
        "failed_items": 0,
        "processing_time": status["result"]["processing_time"],
    }
    assert status["embeddings"] >= 1


def test_job_id_is_an_idempotency_key_per_user(api: Api, doc: str, tmp_path: Path) -> None:
    first = api.submit("same", [doc])
    again = api.submit("same", [doc])
    assert first.status_code == again.status_code == 200
    assert again.json()["job_id"] == "same"
    with api.client.app.state.ctx.db.session() as s:  # type: ignore[attr-defined]
        from sqlalchemy import func, select

        from ragcast.store.models import Job

        assert s.scalar(select(func.count(Job.id))) == 1
    changed = api.submit("same", [doc], settings={"chunkSize": 128, "chunkOverlap": 0})
    _error(changed, 409, "conflict")
    # Another user may use the same job_id for their own job.
    path = tmp_path / "b.txt"
    path.write_text(TEXT)
    assert api.submit("same", [api.upload(path, user="bob")], user="bob").status_code == 200


@pytest.mark.parametrize(
    ("change", "field", "issue"),
    [
        ({"platform": "myspace"}, "platform", None),
        ({"input_method": "fax"}, "input_method", None),
        (
            {"embedding_model": {"id": "local", "dimensions": 100}},
            "embedding_model.dimensions",
            "Must be between 128 and 2048",
        ),
        (
            {"embedding_model": {"id": "local", "dimensions": 4096}},
            "embedding_model.dimensions",
            "Must be between 128 and 2048",
        ),
        (
            {"embedding_model": {"id": "jina-v4", "jina_v4_dimensions": 64}},
            "embedding_model.jina_v4_dimensions",
            "Must be between 128 and 2048",
        ),
        (
            {"embedding_model": {"id": "local", "dimensions": 1024}},
            "embedding_model.dimensions",
            None,
        ),
        ({"embedding_model": {"id": "word2vec"}}, "embedding_model.id", None),
        ({"embedding_model": {"id": "jina-v4"}}, "embedding_model.id", None),
        ({"embedding_model": {"id": "gemini-exp"}}, "embedding_model.id", None),
        (
            {"embedding_model": {"id": "jina-v4", "jina_v4_task": "poetry"}},
            "embedding_model.jina_v4_task",
            None,
        ),
        ({"vector_db": {"id": "mongodb"}}, "vector_db.id", None),
        ({"vector_db": {"id": "pinecone"}}, "vector_db.id", None),
        ({"vector_db": {"id": "qdrant"}}, "vector_db.id", None),
        ({"vector_db": {"id": "pgvector"}}, "vector_db.id", None),
        (
            {"settings": {"chunkSize": 100, "chunkOverlap": 100}},
            "settings.chunkOverlap",
            "Must be smaller than settings.chunkSize",
        ),
        ({"settings": {"chunkSize": 0}}, "settings.chunkSize", None),
        ({"uploaded_documents": []}, "uploaded_documents", None),
        ({"uploaded_documents": ["doc_missing"]}, "uploaded_documents[0]", None),
        ({"input_method": "channel"}, "input_method", None),
        ({"platform": "youtube", "input_method": "channel"}, "channel_url", None),
        (
            {"platform": "youtube", "input_method": "channel", "channel_url": "file:///etc/passwd"},
            "channel_url",
            None,
        ),
        ({"platform": "tiktok", "input_method": "urls"}, "pasted_urls", None),
        ({"job_id": "has spaces"}, "job_id", None),
        ({"job_id": None}, "job_id", None),
    ],
)
def test_validation_errors_name_the_field(
    api: Api, doc: str, change: dict[str, Any], field: str, issue: str | None
) -> None:
    body = job_body("v1", [doc])
    body.update(change)
    body = {k: v for k, v in body.items() if v is not None}
    r = api.client.post(f"{PREFIX}/process", json=body, headers=api.h())
    err = _error(r, 400, "validation_error")
    assert err["details"]["field"] == field, err
    assert err["details"]["issue"]
    if issue is not None:
        assert err["details"]["issue"] == issue
    assert "X-RateLimit-Remaining" in r.headers


def test_malformed_json_is_a_400(api: Api) -> None:
    r = api.client.post(
        f"{PREFIX}/process",
        content=b"{not json",
        headers={**api.h(), "Content-Type": "application/json"},
    )
    err = _error(r, 400, "validation_error")
    assert err["details"]["field"] == "body"


def test_missing_and_bad_keys_are_401(api: Api) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer rc_notakey0000000000000"},
        {"Authorization": "x"},
    ):
        r = api.client.get(f"{PREFIX}/jobs", headers=headers)
        _error(r, 401, "unauthorized")


def test_objects_of_another_user_answer_404(api: Api, doc: str) -> None:
    assert api.submit("private", [doc]).status_code == 200
    api.wait("private")
    exp = api.client.post(
        f"{PREFIX}/export",
        json={"job_id": "private", "format": "json", "export_id": "e1"},
        headers=api.h(),
    )
    assert exp.status_code == 200
    bob = api.h("bob")
    c = api.client
    for r in (
        c.get(f"{PREFIX}/job/private/status", headers=bob),
        c.get(f"{PREFIX}/job/private/items", headers=bob),
        c.post(f"{PREFIX}/job/private/cancel", headers=bob),
        c.post(f"{PREFIX}/export", json={"job_id": "private", "format": "csv"}, headers=bob),
        c.get(f"{PREFIX}/export/e1/status", headers=bob),
        c.get(f"{PREFIX}/download/e1", headers=bob),
        c.post(f"{PREFIX}/search", json={"query": "ships", "job_id": "private"}, headers=bob),
        c.get(f"{PREFIX}/job/nothing-here/status", headers=bob),
    ):
        _error(r, 404, "not_found")
    # Bob cannot use alice's upload either.
    r = api.submit("steal", [doc], user="bob")
    assert _error(r, 400, "validation_error")["details"]["field"] == "uploaded_documents[0]"
    # Nor find her chunks by searching everything he has.
    r = c.post(f"{PREFIX}/search", json={"query": "lighthouse keeper ships"}, headers=bob)
    assert r.status_code == 200 and r.json()["results"] == []
    r = c.post(f"{PREFIX}/search", json={"query": "lighthouse keeper ships"}, headers=api.h())
    assert "lighthouse" in r.json()["results"][0]["text"]


def test_exactly_20_of_25_concurrent_submissions_are_accepted(api: Api, doc: str) -> None:
    def submit(n: int) -> Any:
        return api.submit(f"burst-{n}", [doc])

    with ThreadPoolExecutor(max_workers=25) as pool:
        answers = list(pool.map(submit, range(25)))
    codes = sorted(r.status_code for r in answers)
    assert codes.count(200) == 20 and codes.count(429) == 5, codes
    limited = next(r for r in answers if r.status_code == 429)
    body = _error(limited, 429, "rate_limit_exceeded")
    assert isinstance(body["retry_after"], int) and body["retry_after"] > 0
    assert limited.headers["Retry-After"] == str(body["retry_after"])
    assert limited.headers["X-RateLimit-Remaining"] == "0"
    assert limited.headers["X-RateLimit-Limit"] == "20"
    # Reads have their own budget.
    assert api.client.get(f"{PREFIX}/jobs", headers=api.h()).status_code == 200
    # Other users are not affected.
    r = api.client.post(f"{PREFIX}/process", json=job_body("x", ["doc_none"]), headers=api.h("bob"))
    assert r.status_code == 400


def test_rate_limits_are_configurable(api_factory: Callable[..., Api]) -> None:
    api = api_factory(rate_limit_read="3/minute")
    codes = [api.client.get(f"{PREFIX}/jobs", headers=api.h()).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]


def test_server_errors_carry_the_request_id(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    from ragcast.api.routes import jobs

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(jobs, "user_job", boom)
    client = TestClient(api.client.app, raise_server_exceptions=False)
    r = client.get(f"{PREFIX}/job/x/status", headers=api.h())
    assert r.status_code == 500
    body = r.json()
    assert body["success"] is False and body["error"] == "processing_error"
    assert body["request_id"] == r.headers["X-Request-ID"]
    assert "secret internals" not in r.text and "Traceback" not in r.text


def test_cleanup_is_admin_only(api: Api, doc: str) -> None:
    assert api.submit("old", [doc]).status_code == 200
    api.wait("old")
    _error(api.client.delete(f"{PREFIX}/cleanup", headers=api.h()), 403, "forbidden")
    r = api.client.delete(f"{PREFIX}/cleanup?older_than_hours=0", headers=api.h("root"))
    assert r.status_code == 200 and r.json() == {"success": True, "deleted_count": 1}
    _error(api.client.get(f"{PREFIX}/job/old/status", headers=api.h()), 404, "not_found")


def test_job_list_is_paginated_and_private(api: Api, doc: str) -> None:
    for n in range(3):
        assert api.submit(f"list-{n}", [doc]).status_code == 200
    page = api.client.get(f"{PREFIX}/jobs?limit=2", headers=api.h()).json()
    assert page["total"] == 3 and len(page["jobs"]) == 2
    assert page["jobs"][0]["job_id"] == "list-2"
    rest = api.client.get(f"{PREFIX}/jobs?limit=2&offset=2", headers=api.h()).json()
    assert [j["job_id"] for j in rest["jobs"]] == ["list-0"]
    assert api.client.get(f"{PREFIX}/jobs", headers=api.h("bob")).json()["total"] == 0


def test_uploads_are_capped_and_sniffed(api_factory: Callable[..., Api]) -> None:
    api = api_factory(max_upload_bytes=4096)
    url = f"{PREFIX}/uploads"
    ok = api.client.post(
        url, files={"file": ("a.txt", io.BytesIO(b"hello there"))}, headers=api.h()
    )
    assert ok.status_code == 200
    body = ok.json()
    assert set(body) == {"document_id", "filename", "size", "sha256", "content_type"}
    assert body["content_type"] == "text/plain" and body["size"] == 11
    big = api.client.post(url, files={"file": ("a.txt", io.BytesIO(b"a" * 5000))}, headers=api.h())
    _error(big, 413, "payload_too_large")
    empty = api.client.post(url, files={"file": ("a.wav", io.BytesIO(b""))}, headers=api.h())
    _error(empty, 400, "validation_error")
    binary = api.client.post(
        url, files={"file": ("a.mp3", io.BytesIO(bytes(range(256)) * 4))}, headers=api.h()
    )
    _error(binary, 400, "validation_error")
    assert (
        not any((api.settings.data_dir / "uploads").iterdir())
        or len(list((api.settings.data_dir / "uploads").iterdir())) == 1
    )


def test_health_and_metrics(api: Api) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok"}
    ready = api.client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["database"] == "ok"
    assert "ragcast_jobs" in api.client.get("/metrics").text
    assert api.client.get("/openapi.json").json()["paths"][f"{PREFIX}/process"]


def test_configured_but_missing_backends_are_refused_at_submission(
    api_factory: Callable[..., Api], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ragcast.providers import registry

    # As on a server without the extra installed: the plugin does not import.
    monkeypatch.setattr(registry, "_plugin", lambda group, name: None)
    api = api_factory(jina_api_key="jina_test", qdrant_path=str(tmp_path / "q"))
    path = tmp_path / "n.txt"
    path.write_text(TEXT)
    doc = api.upload(path)
    r = api.submit("j", [doc], embedding_model={"id": "jina-v4", "jina_v4_dimensions": 1024})
    assert "not installed" in _error(r, 400, "validation_error")["details"]["issue"]
    r = api.submit("q", [doc], vector_db={"id": "qdrant"})
    assert "not installed" in _error(r, 400, "validation_error")["details"]["issue"]
    assert api.client.get(f"{PREFIX}/jobs", headers=api.h()).json()["total"] == 0
