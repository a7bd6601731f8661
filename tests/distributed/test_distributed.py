"""Distributed mode on real PostgreSQL, Redis, RabbitMQ and a Chroma server."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from ragcast.runner.broker import QUEUES
from tests.conftest import DATA, Recording, job_body
from tests.distributed.cluster import AMQP_URL, Cluster

pytestmark = [pytest.mark.service, pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path)
    try:
        yield c
    finally:
        c.close()


def _upload_all(c: httpx.Client, recordings: list[Recording]) -> list[str]:
    docs = []
    for rec in recordings:
        with rec.path.open("rb") as f:
            r = c.post("/uploads", files={"file": (rec.path.name, f)})
        assert r.status_code == 200, r.text
        docs.append(r.json()["document_id"])
    return docs


def _wait(c: httpx.Client, job_id: str, timeout: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status: dict[str, Any] = c.get(f"/job/{job_id}/status").json()
        if status.get("result") is not None:
            return status
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} did not finish: {status}")


def _check_exactly_once(c: httpx.Client, job_id: str, n_items: int) -> None:
    """Each item once in the results; the vector count equals the chunk count."""
    items = c.get(f"/job/{job_id}/items").json()["items"]
    assert [i["status"] for i in items] == ["completed"] * n_items, items
    exp = c.post("/export", json={"job_id": job_id, "format": "vector"}).json()
    for _ in range(300):
        status = c.get(exp["status_url"].removeprefix("/api/public/bulk")).json()
        if status["status"] == "completed":
            break
        time.sleep(0.2)
    rows = [json.loads(x) for x in c.get(f"/download/{exp['export_id']}").text.splitlines()]
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)) == sum(i["chunks"] for i in items)
    assert {r["metadata"]["content_id"] for r in rows} == {i["content_id"] for i in items}


def _vector_count(cluster: Cluster) -> int:
    from ragcast.providers.vectorstores.chroma import ChromaStore

    store = ChromaStore(url=cluster.chroma_url)
    return store.count("ragcast-local-use-multilingual-v3-512", tenant="u1")


def test_two_workers_share_a_job(cluster: Cluster, english_recordings: list[Recording]) -> None:
    cluster.api()
    a, b = cluster.worker("worker-a"), cluster.worker("worker-b")
    with cluster.client() as c:
        docs = _upload_all(c, english_recordings)
        assert c.post("/process", json=job_body("two-workers", docs)).status_code == 200
        status = _wait(c, "two-workers")
        assert status["status"] == "completed", status
        assert status["result"]["completed_items"] == len(docs)
        _check_exactly_once(c, "two-workers", len(docs))
        total_chunks = sum(i["chunks"] for i in c.get("/job/two-workers/items").json()["items"])
        metrics = httpx.get(f"http://127.0.0.1:{cluster.ports['api0']}/metrics").text
    assert "transcribing started" in a.text() and "transcribing started" in b.text()
    assert _vector_count(cluster) == total_chunks
    assert 'ragcast_stage_count_total{stage="transcribed"} 6.0' in metrics
    assert "ragcast_queue_depth" in metrics
    ready = httpx.get(f"http://127.0.0.1:{cluster.ports['api0']}/readyz").json()
    assert ready["checks"] == {"database": "ok", "broker": "ok"}


def test_a_worker_killed_mid_transcription_loses_nothing(
    cluster: Cluster, english_recordings: list[Recording]
) -> None:
    cluster.api()
    victim = cluster.worker("victim")
    with cluster.client() as c:
        docs = _upload_all(c, english_recordings)
        assert c.post("/process", json=job_body("sigkill", docs)).status_code == 200
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            started = re.findall(r"item (\d+): transcribing started", victim.text())
            finished = re.findall(r"item (\d+): transcribing finished", victim.text())
            if len(started) > len(finished) and len(finished) >= 1:
                break
            time.sleep(0.02)
        victim.kill()
        in_flight = set(started) - set(finished)
        assert in_flight, "no transcription was in flight"
        cluster.worker("rescuer")
        status = _wait(c, "sigkill", timeout=400)
        assert status["status"] == "completed", status
        assert status["result"]["completed_items"] == len(docs)
        _check_exactly_once(c, "sigkill", len(docs))
        total_chunks = sum(i["chunks"] for i in c.get("/job/sigkill/items").json()["items"])
    assert _vector_count(cluster) == total_chunks


def test_api_restart_and_websocket_across_processes(
    cluster: Cluster, english_recordings: list[Recording]
) -> None:
    api0 = cluster.api()
    cluster.api()
    cluster.worker("worker")
    with cluster.client(0) as c0, cluster.client(1) as c1:
        docs = _upload_all(c0, english_recordings[:4])
        accepted = c0.post("/process", json=job_body("followed", docs)).json()
        # The socket goes to the other API process than the one that took the job.
        url = accepted["websocket_url"].replace(
            f":{cluster.ports['api0']}/", f":{cluster.ports['api1']}/"
        )
        messages: list[dict[str, Any]] = []

        async def follow() -> None:
            async with websockets.connect(url) as ws:
                async for raw in ws:
                    messages.append(json.loads(raw))
                    if messages[-1]["type"] in ("completed", "error"):
                        return

        with ThreadPoolExecutor(1) as pool:
            fut = pool.submit(asyncio.run, follow())
            time.sleep(1.0)
            api0.kill()  # the API that accepted the job dies mid-job
            cluster.restart(api0)
            fut.result(timeout=300)
        final = _wait(c0, "followed")
        assert final == c1.get("/job/followed/status").json()
    assert final["status"] == "completed"
    assert messages[-1]["type"] == "completed"
    progress = [m["progress"] for m in messages if m["type"] == "progress"]
    assert progress == sorted(progress)
    stages = {m["item"]["stage"] for m in messages if "item" in m}
    assert {"transcribing", "indexed"} <= stages


def test_rate_limits_hold_across_two_api_processes(cluster: Cluster, tmp_path: Path) -> None:
    cluster.api()
    cluster.api()
    note = tmp_path / "n.txt"
    note.write_text("Two processes, one budget.")
    with cluster.client(0) as c0, cluster.client(1) as c1:
        doc = c0.post("/uploads", files={"file": ("n.txt", note.read_bytes())}).json()

        def submit(n: int) -> int:
            client = c0 if n % 2 else c1
            return client.post(
                "/process", json=job_body(f"burst-{n}", [doc["document_id"]])
            ).status_code

        with ThreadPoolExecutor(max_workers=25) as pool:
            codes = list(pool.map(submit, range(25)))
    assert codes.count(200) == 20 and codes.count(429) == 5, codes


def test_cancellation_reaches_workers(
    cluster: Cluster, english_recordings: list[Recording]
) -> None:
    cluster.api()
    worker = cluster.worker("worker")
    with cluster.client() as c:
        docs = _upload_all(c, english_recordings)
        assert c.post("/process", json=job_body("stop-it", docs)).status_code == 200
        deadline = time.monotonic() + 120
        while "transcribing started" not in worker.text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert c.post("/job/stop-it/cancel").status_code == 200
        status = _wait(c, "stop-it")
        assert status["status"] == "cancelled"
        items = c.get("/job/stop-it/items").json()["items"]
    assert sum(i["status"] == "cancelled" for i in items) >= len(items) - 2
    started_after = worker.text().split("transcribing started")
    assert len(started_after) - 1 <= 2, "transcriptions kept starting after the cancel"


def _rabbitmq_vhost() -> Iterator[str]:
    """A private vhost, so concurrent runs never consume each other's messages."""
    vhost = f"ragcast-test-{time.time_ns()}"
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", vhost], check=True, timeout=60)
    subprocess.run(
        ["rabbitmqctl", "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
        check=True,
        timeout=60,
    )
    try:
        yield AMQP_URL.rstrip("/") + "/" + vhost
    finally:
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], check=False, timeout=60)


rabbitmq_url = pytest.fixture(_rabbitmq_vhost)


def test_rabbitmq_broker_runs_a_job(
    tmp_path: Path, english_recordings: list[Recording], rabbitmq_url: str
) -> None:
    cluster = Cluster(tmp_path, broker_url=rabbitmq_url)
    try:
        cluster.api()
        cluster.worker("worker")
        with cluster.client() as c:
            docs = _upload_all(c, english_recordings[:2])
            assert c.post("/process", json=job_body("rabbit", docs)).status_code == 200
            status = _wait(c, "rabbit")
            assert status["status"] == "completed", status
            _check_exactly_once(c, "rabbit", 2)
    finally:
        cluster.close()


def test_active_jobs_per_user_are_limited_across_workers(
    cluster: Cluster, english_recordings: list[Recording]
) -> None:
    cluster.extra_env["RAGCAST_MAX_ACTIVE_JOBS_PER_USER"] = "1"
    cluster.api()
    cluster.worker("worker-a")
    cluster.worker("worker-b")
    with cluster.client() as c:
        docs = _upload_all(c, english_recordings[:2])
        for n in range(3):
            assert c.post("/process", json=job_body(f"queued-{n}", docs)).status_code == 200
        seen_active: list[int] = []
        waited = False
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            jobs = c.get("/jobs").json()["jobs"]
            active = sum(j["status"] in ("initializing", "processing") for j in jobs)
            seen_active.append(active)
            waited |= active == 1 and any(j["status"] == "pending" for j in jobs)
            if all(j["status"] == "completed" for j in jobs):
                break
            time.sleep(0.1)
    assert max(seen_active) == 1, seen_active
    assert waited, "no job was seen waiting as pending while another ran"


def test_diarization_runs_on_its_own_queue(cluster: Cluster, tmp_path: Path) -> None:
    from tests.providers.diarizers.mixtures import conversation, write_wav

    cluster.api()
    rest = [q for q in QUEUES if q != "ragcast.diarize"]
    others = cluster.worker("others", *rest)
    speakers = cluster.worker("speakers", "ragcast.diarize")
    wav = write_wav(conversation(DATA).audio, tmp_path / "talk.wav")
    with cluster.client() as c:
        with wav.open("rb") as f:
            doc = c.post("/uploads", files={"file": ("talk.wav", f)}).json()["document_id"]
        body = job_body(
            "talk", [doc], settings={"diarize": True, "chunkSize": 64, "chunkOverlap": 8}
        )
        assert c.post("/process", json=body).status_code == 200
        status = _wait(c, "talk")
        assert status["status"] == "completed", status
        _check_exactly_once(c, "talk", 1)
        transcript = c.get("/job/talk/items/0/transcript").json()
    assert [s["label"] for s in transcript["speakers"]] == ["SPEAKER_00", "SPEAKER_01"]
    assert "diarizing started" in speakers.text() and "diarizing started" not in others.text()
    assert "transcribing started" in others.text()
