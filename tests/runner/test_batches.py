"""Light items travel through the stages in batches: fewer messages, same results."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from ragcast.runner import tasks
from ragcast.store.models import Chunk, Item, Job
from tests.conftest import PREFIX, Api


def _docs(api: Api, tmp_path: Path, n: int) -> list[str]:
    docs = []
    for i in range(n):
        path = tmp_path / f"note{i}.txt"
        path.write_text(f"Note number {i} says the ferry to island {i} leaves at {i % 12} o'clock.")
        docs.append(api.upload(path))
    return docs


def test_many_documents_run_in_batches_and_one_bad_one_fails_alone(
    api_factory: Callable[..., Api], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[tuple[int, str]] = []
    run_stage = tasks.run_stage

    def counted(ctx: Any, item_ids: Any, stage: str, *args: Any, **kwargs: Any) -> None:
        sent.append((1 if isinstance(item_ids, int) else len(item_ids), stage))
        run_stage(ctx, item_ids, stage, *args, **kwargs)

    monkeypatch.setattr(tasks, "run_stage", counted)
    api = api_factory(batch_items=10)
    docs = _docs(api, tmp_path, 24)
    bad = tmp_path / "broken.pdf"
    bad.write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 8)
    docs.insert(7, api.upload(bad))
    assert api.submit("many", docs).status_code == 200
    status = api.wait("many")

    assert status["status"] == "completed"
    assert status["result"]["completed_items"] == 24 and status["result"]["failed_items"] == 1
    assert status["stage"] == "Processing completed with 1 failed item"
    items = api.client.get(f"{PREFIX}/job/many/items?limit=100", headers=api.h()).json()["items"]
    assert [i["status"] for i in items].count("completed") == 24
    assert items[7]["status"] == "failed" and items[7]["error"]
    # 25 items, 10 a message, five stages: a handful of messages, not 125.
    assert max(n for n, _ in sent) == 10
    assert len(sent) <= 5 * 4, sent
    ctx = api.client.app.state.ctx  # type: ignore[attr-defined]
    with ctx.db.session() as s:
        job = s.scalars(select(Job).where(Job.job_id == "many")).one()
        chunks = s.scalar(select(func.count(Chunk.id)).join(Item).where(Item.job_pk == job.id))
        assert job.content_processed == job.total_content == 25
        assert job.work_done == pytest.approx(25.0)
        assert job.embeddings == chunks == 24
    # Every document is found, each once.
    hits = api.client.post(
        f"{PREFIX}/search", json={"query": "ferry to island 13", "top_k": 50}, headers=api.h()
    ).json()
    ids = [(h["content_id"], h["chunk_index"]) for h in hits["results"]]
    assert len(ids) == len(set(ids)) == 24
    assert "island 13 " in hits["results"][0]["text"]


def test_each_finished_item_of_a_batch_is_reported(
    api_factory: Callable[..., Api], tmp_path: Path
) -> None:
    api = api_factory(batch_items=50, workers=1)
    docs = _docs(api, tmp_path, 12)
    accepted = api.submit("reported", docs).json()
    path = accepted["websocket_url"].split("://", 1)[1].split("/", 1)[1]
    messages: list[dict[str, Any]] = []
    with api.client.websocket_connect("/" + path) as ws:
        while True:
            msg = ws.receive_json()
            messages.append(msg)
            if msg["type"] in ("completed", "error"):
                break
    finished = {
        m["item"]["index"]
        for m in messages
        if m["type"] == "progress" and m.get("item", {}).get("status") == "completed"
    }
    assert messages[-1]["type"] == "completed"
    # Unless the job was already finished when the socket opened, every item's completion
    # was its own message; the coalesced ones in between are few.
    if len(messages) > 1:
        assert finished == set(range(12))
        assert len(messages) <= 12 + 5 * 2 + 2
    progress = [m["progress"] for m in messages if m["type"] == "progress"]
    assert progress == sorted(progress)
