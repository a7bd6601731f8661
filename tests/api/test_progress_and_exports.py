"""WebSocket progress, cancellation, failed items and every export format."""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from starlette.testclient import WebSocketDenialResponse
from starlette.websockets import WebSocketDisconnect

from tests.conftest import PREFIX, Api, Recording

pytestmark = pytest.mark.slow


def _ws_path(url: str) -> str:
    return url.removeprefix("ws://testserver")


def _follow(api: Api, url: str, **kwargs: Any) -> list[dict[str, Any]]:
    messages = []
    with api.client.websocket_connect(url, **kwargs) as ws:
        while True:
            msg = ws.receive_json()
            messages.append(msg)
            if msg["type"] in ("completed", "error"):
                break
        with pytest.raises(WebSocketDisconnect):
            ws.receive_json()  # the socket closes after the terminal message
    return messages


def test_websocket_reports_each_stage_then_completes(
    api_factory: Callable[..., Api], english_recordings: list[Recording]
) -> None:
    api = api_factory(workers=1)  # items one after the other: the second is seen whole
    docs = [api.upload(r.path) for r in english_recordings[:2]]
    accepted = api.submit("ws-job", docs).json()
    messages = _follow(api, _ws_path(accepted["websocket_url"]))
    assert messages[0]["type"] == "progress"  # the current state, on connect
    progress = [m for m in messages if m["type"] == "progress"]
    for m in progress:
        assert set(m) >= {
            "type",
            "job_id",
            "progress",
            "stage",
            "contentProcessed",
            "embeddings",
            "status",
        }
        assert m["job_id"] == "ws-job"
    values = [m["progress"] for m in progress]
    assert values == sorted(values), "progress went backwards"
    stages = {(m["item"]["index"], m["item"]["stage"]) for m in progress if "item" in m}
    assert (0, "indexed") in stages
    # Uploads are fetched together (light work); each recording then runs alone, and
    # every stage of an item alone is reported as it starts and as it finishes.
    for stage in ("transcribing", "transcribed", "chunking", "chunked", "embedding", "indexed"):
        assert (1, stage) in stages
    assert any(m["stage"].startswith("Processing item ") for m in progress)
    final = messages[-1]
    assert final["type"] == "completed" and final["progress"] == 100
    assert final["result"]["total_items"] == 2 and final["result"]["completed_items"] == 2
    assert final["result"]["failed_items"] == 0 and final["result"]["processing_time"] > 0
    # A late subscriber gets the final state at once, by ticket or by bearer key. A ticket
    # opens one socket only, so a second one comes from GET /job/{id}/ticket.
    fresh = api.client.get(f"{PREFIX}/job/ws-job/ticket", headers=api.h()).json()
    late = _follow(api, _ws_path(fresh["websocket_url"]))
    assert [m["type"] for m in late] == ["completed"]
    late = _follow(api, f"{PREFIX}/ws/bulk-processing/ws-job", headers=api.h())
    assert late[-1]["type"] == "completed"


def test_websocket_refuses_bad_tickets_and_other_users(api: Api, tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("A short note about tides.")
    accepted = api.submit("ws-auth", [api.upload(path)]).json()
    token = accepted["websocket_url"].split("token=")[1]
    for url, headers, status, code in (
        (f"{PREFIX}/ws/bulk-processing/ws-auth?token=1.9999999999.forged", {}, 401, "unauthorized"),
        (f"{PREFIX}/ws/bulk-processing/other-job?token={token}", {}, 401, "unauthorized"),
        (f"{PREFIX}/ws/bulk-processing/ws-auth", {}, 401, "unauthorized"),
        (f"{PREFIX}/ws/bulk-processing/ws-auth", api.h("bob"), 404, "not_found"),
    ):
        with pytest.raises(WebSocketDenialResponse) as info:
            with api.client.websocket_connect(url, headers=headers) as ws:
                ws.receive_json()
        assert info.value.status_code == status
        assert info.value.json()["error"] == code


def test_a_corrupt_item_fails_alone(
    api: Api, english_recordings: list[Recording], tmp_path: Path
) -> None:
    good = english_recordings[1].path
    broken = tmp_path / "broken.wav"
    data = good.read_bytes()
    broken.write_bytes(data[:44] + bytes(reversed(data[44:4000])))  # a WAV header, then noise
    garbage = tmp_path / "garbage.flac"
    garbage.write_bytes(b"fLaC" + b"\x00\x01\x02" * 3000)
    docs = [api.upload(good), api.upload(garbage)]
    assert api.submit("mixed", docs).status_code == 200
    status = api.wait("mixed")
    assert status["status"] == "completed"
    assert status["result"]["completed_items"] == 1 and status["result"]["failed_items"] == 1
    items = api.client.get(f"{PREFIX}/job/mixed/items", headers=api.h()).json()["items"]
    assert items[0]["status"] == "completed" and items[0]["chunks"] >= 1
    assert items[1]["status"] == "failed"
    assert "could not decode audio" in items[1]["error"]


def test_a_job_whose_items_all_fail_is_failed(api: Api, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.flac"
    garbage.write_bytes(b"fLaC" + b"\xff\x00" * 5000)
    accepted = api.submit("doomed", [api.upload(garbage)]).json()
    messages = _follow(api, _ws_path(accepted["websocket_url"]))
    assert messages[-1]["type"] == "error"
    assert messages[-1]["message"].startswith("Processing failed")
    status = api.wait("doomed")
    assert status["status"] == "failed" and status["error"]


def test_cancel_stops_a_job_between_stages(api: Api, english_recordings: list[Recording]) -> None:
    docs = [api.upload(r.path) for r in english_recordings]
    accepted = api.submit("to-cancel", docs).json()
    r = api.client.post(f"{PREFIX}/job/to-cancel/cancel", headers=api.h())
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    messages = _follow(api, _ws_path(accepted["websocket_url"]))
    assert messages[-1]["type"] == "error" and "cancelled" in messages[-1]["message"]
    status = api.wait("to-cancel")
    assert status["status"] == "cancelled"
    items = api.client.get(f"{PREFIX}/job/to-cancel/items", headers=api.h()).json()["items"]
    assert sum(i["status"] == "cancelled" for i in items) >= len(items) - 2
    again = api.client.post(f"{PREFIX}/job/to-cancel/cancel", headers=api.h())
    assert again.status_code == 409


@pytest.fixture
def finished_job(api: Api, english_recordings: list[Recording], tmp_path: Path) -> str:
    srt = tmp_path / "talk.srt"
    srt.write_text(
        "1\n00:00:01,000 --> 00:00:04,000\nThe harbour opens at dawn.\n\n"
        '2\n00:00:05,500 --> 00:00:09,000\nFishing boats return, "heavy", at noon.\n'
    )
    docs = [api.upload(english_recordings[0].path), api.upload(srt)]
    small = {"chunkSize": 16, "chunkOverlap": 4, "maxTokens": 8192}
    assert api.submit("exp-job", docs, settings=small).status_code == 200
    assert api.wait("exp-job")["status"] == "completed"
    return "exp-job"


def _export(api: Api, job_id: str, fmt: str) -> Any:
    r = api.client.post(f"{PREFIX}/export", json={"job_id": job_id, "format": fmt}, headers=api.h())
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"success", "export_id", "message", "status_url"}
    for _ in range(200):
        status = api.client.get(body["status_url"], headers=api.h()).json()
        if status["status"] in ("completed", "failed"):
            break
        import time

        time.sleep(0.05)
    assert status["status"] == "completed", status
    assert status["progress"] == 100 and status["file_size"] > 0
    assert status["download_url"] == f"{PREFIX}/download/{body['export_id']}"
    return status


def test_every_export_format_round_trips(api: Api, finished_job: str) -> None:
    rows_by_fmt: dict[str, list[dict[str, Any]]] = {}
    for fmt, ext in (("json", "json"), ("csv", "csv"), ("parquet", "parquet"), ("vector", "jsonl")):
        status = _export(api, finished_job, fmt)
        r = api.client.get(status["download_url"], headers=api.h())
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/octet-stream"
        assert r.headers["content-disposition"] == f'attachment; filename="{status["filename"]}"'
        assert status["filename"].startswith("bulk-embeddings-") and status["filename"].endswith(
            ext
        )
        assert int(r.headers["content-length"]) == status["file_size"] == len(r.content)
        if fmt == "json":
            rows = json.loads(r.content)["chunks"]
        elif fmt == "csv":
            rows = list(csv.DictReader(io.StringIO(r.content.decode())))
            for row in rows:
                row["embedding"] = json.loads(row["embedding"])
        elif fmt == "parquet":
            rows = pq.read_table(io.BytesIO(r.content)).to_pylist()
        else:
            lines = [json.loads(line) for line in r.content.decode().splitlines()]
            assert all(set(x) == {"id", "values", "metadata"} for x in lines)
            rows = [{**x["metadata"], "id": x["id"], "embedding": x["values"]} for x in lines]
        rows_by_fmt[fmt] = rows
        assert len(rows) >= 3
        for row in rows:
            assert len(row["embedding"]) == 512 and row["text"]
            assert row["source"] in ("clip01.flac", "talk.srt")
    srt_rows = [r for r in rows_by_fmt["parquet"] if r["source"] == "talk.srt"]
    assert srt_rows[0]["start_s"] == 1.0 and srt_rows[-1]["end_s"] == 9.0
    audio = [r for r in rows_by_fmt["json"] if r["source"] == "clip01.flac"]
    assert audio[0]["start_s"] >= 0 and audio[-1]["end_s"] <= 11.5
    ids = {fmt: [r["id"] for r in rows] for fmt, rows in rows_by_fmt.items()}
    assert ids["json"] == ids["csv"] == ids["parquet"] == ids["vector"]


def test_download_supports_range(api: Api, finished_job: str) -> None:
    status = _export(api, finished_job, "json")
    full = api.client.get(status["download_url"], headers=api.h()).content
    part = api.client.get(status["download_url"], headers={**api.h(), "Range": "bytes=2-11"})
    assert part.status_code == 206 and part.content == full[2:12]


def test_export_of_unfinished_or_unknown_jobs(
    api: Api, english_recordings: list[Recording]
) -> None:
    r = api.client.post(
        f"{PREFIX}/export", json={"job_id": "nope", "format": "csv"}, headers=api.h()
    )
    assert r.status_code == 404
    r = api.client.post(
        f"{PREFIX}/export", json={"job_id": "nope", "format": "xml"}, headers=api.h()
    )
    assert r.status_code == 400 and r.json()["details"]["field"] == "format"


def test_a_vanished_upload_fails_its_item(api: Api, tmp_path: Path) -> None:
    path = tmp_path / "n.md"
    path.write_text("# Notes\n\nTides rise twice a day.")
    doc = api.upload(path)
    shutil.rmtree(api.settings.data_dir / "uploads")
    assert api.submit("gone", [doc]).status_code == 200
    status = api.wait("gone")
    assert status["status"] == "failed" and "no longer available" in status["error"]
