"""Exports a RAG user can load as they are, through the real service on real recordings.

Every format is read back with its own reader (json, csv, pyarrow, JSON Lines): the item's
and the model's columns, ``speakers`` as a list, parquet's schema metadata, one file per
job and export, and the warning of an export that holds nothing.
"""

from __future__ import annotations

import csv
import io
import json
import time
import wave
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

import ragcast
from ragcast.api.app import create_app
from ragcast.auth import create_key
from ragcast.exports import FIELD_NAMES, FORMATS
from ragcast.store.models import Export
from tests.conftest import DATA, PREFIX, Api, make_settings
from tests.providers.diarizers.mixtures import conversation, write_wav

pytestmark = pytest.mark.slow

#: the upload job: English and German recordings, each with its length in seconds
CLIPS = {"clip01.flac": ("en", 11.0), "clip13.wav": ("de", 5.256)}
MODEL = "use-multilingual-v3"
SMALL = {"chunkSize": 48, "chunkOverlap": 8, "maxTokens": 8192}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    tmp = tmp_path_factory.mktemp("export-fields")
    settings = make_settings(tmp, rate_limit_export="1000/hour")
    app = create_app(settings)
    with app.state.ctx.db.session() as s:
        keys = {name: create_key(s, name)[0] for name in ("alice", "bob")}
    with TestClient(app) as client:
        yield Api(client=client, settings=settings, keys=keys)


@pytest.fixture(scope="module")
def jobs(api: Api, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Three finished jobs: two uploaded clips, a diarized conversation with named
    speakers, and a silent recording that gives no chunk."""
    tmp = tmp_path_factory.mktemp("recordings")
    mixture = conversation(DATA)
    talk = write_wav(mixture.audio, tmp / "talk.wav")
    silent = tmp / "silence.wav"
    with wave.open(str(silent), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\x00\x00" * 16000 * 3)
    clips = [api.upload(DATA / name) for name in CLIPS]
    assert api.submit("clips", clips, settings=SMALL).status_code == 200
    diarized = {**SMALL, "diarize": True}
    assert api.submit("talk:1", [api.upload(talk)], settings=diarized).status_code == 200
    assert api.submit("quiet", [api.upload(silent)]).status_code == 200
    assert api.wait("clips")["status"] == "completed"
    assert api.wait("talk:1")["status"] == "completed"
    assert api.wait("quiet")["status"] == "failed"
    names = {"SPEAKER_00": "JFK", "SPEAKER_01": "Narrator"}
    r = api.client.patch(f"{PREFIX}/job/talk:1/items/0/speakers", json=names, headers=api.h())
    assert r.status_code == 200, r.text
    return {
        "clips": "clips",
        "talk": "talk:1",
        "quiet": "quiet",
        "talk_s": len(mixture.audio) / 16000,
    }


def export(api: Api, job_id: str, fmt: str) -> tuple[dict[str, Any], bytes]:
    """Export ``job_id`` as ``fmt``: the completed status and the downloaded file."""
    r = api.client.post(f"{PREFIX}/export", json={"job_id": job_id, "format": fmt}, headers=api.h())
    assert r.status_code == 200, r.text
    url = r.json()["status_url"]
    for _ in range(600):
        status: dict[str, Any] = api.client.get(url, headers=api.h()).json()
        if status["status"] in ("completed", "failed"):
            break
        time.sleep(0.05)
    assert status["status"] == "completed", status
    r = api.client.get(status["download_url"], headers=api.h())
    assert r.status_code == 200
    assert r.headers["content-disposition"] == f'attachment; filename="{status["filename"]}"'
    assert len(r.content) == status["file_size"]
    return status, r.content


def rows_of(fmt: str, content: bytes) -> list[dict[str, Any]]:
    """The chunks of a file in ``fmt``, each read by its format's own reader."""
    if fmt == "json":
        doc = json.loads(content)
        assert doc["format"] == "ragcast-export" and doc["version"] == 2
        assert doc["count"] == len(doc["chunks"])
        assert all(list(c) == list(FIELD_NAMES) for c in doc["chunks"])
        return list(doc["chunks"])
    if fmt == "csv":
        reader = csv.DictReader(io.StringIO(content.decode("utf-8")))
        rows = list(reader)
        assert reader.fieldnames == list(FIELD_NAMES)
        return rows
    if fmt == "parquet":
        table = pq.read_table(io.BytesIO(content))
        assert table.schema.names == list(FIELD_NAMES)
        return list(table.to_pylist())
    rows = []
    for line in content.decode("utf-8").splitlines():
        record = json.loads(line)
        assert set(record) == {"id", "values", "metadata"}
        assert set(record["metadata"]) <= set(FIELD_NAMES) - {"id", "embedding"}
        rows.append({**record["metadata"], "id": record["id"], "embedding": record["values"]})
    return rows


def test_every_format_carries_the_item_and_the_model(api: Api, jobs: dict[str, Any]) -> None:
    by_format = {fmt: rows_of(fmt, export(api, jobs["clips"], fmt)[1]) for fmt in FORMATS}
    reference = by_format["json"]
    assert {r["source"] for r in reference} == set(CLIPS)
    for row in reference:
        language, duration = CLIPS[row["source"]]
        assert row["platform"] == "documents"
        assert row["deep_link"] is None and row["url"] is None  # an upload opens nowhere
        assert row["channel"] is None and row["upload_date"] is None
        assert row["duration_s"] == pytest.approx(duration, abs=0.05)
        assert row["language"] == language
        assert isinstance(row["language_probability"], float)
        assert 0.5 < row["language_probability"] <= 1.0
        assert row["speaker"] is None and row["speakers"] is None  # not diarized
        assert row["embedding_model"] == MODEL
        assert row["dimensions"] == 512 == len(row["embedding"])
    assert by_format["parquet"] == reference  # float32 values read back as the same doubles
    for csv_row, row in zip(by_format["csv"], reference, strict=True):
        assert float(csv_row["duration_s"]) == row["duration_s"]
        assert float(csv_row["language_probability"]) == row["language_probability"]
        assert int(csv_row["dimensions"]) == 512 and csv_row["embedding_model"] == MODEL
        assert csv_row["deep_link"] == csv_row["channel"] == csv_row["speakers"] == ""
    for vector_row, row in zip(by_format["vector"], reference, strict=True):
        # nulls are left out of vector metadata; everything else is as in json
        assert vector_row == {k: v for k, v in row.items() if v is not None}


def test_parquet_says_which_model_made_it(api: Api, jobs: dict[str, Any]) -> None:
    _, content = export(api, jobs["clips"], "parquet")
    schema = pq.read_schema(io.BytesIO(content))
    assert schema.field("speakers").type == pa.list_(pa.string())
    assert schema.field("embedding").type == pa.list_(pa.float32())
    meta = {k.decode(): v.decode() for k, v in (schema.metadata or {}).items()}
    assert meta["embedding_model"] == MODEL and meta["dimensions"] == "512"
    assert meta["job_id"] == "clips" and meta["ragcast_version"] == ragcast.__version__
    created = datetime.fromisoformat(meta["created_at"])
    assert abs((datetime.now(UTC) - created).total_seconds()) < 600


def test_speakers_are_a_list_of_names(api: Api, jobs: dict[str, Any]) -> None:
    by_format = {fmt: rows_of(fmt, export(api, jobs["talk"], fmt)[1]) for fmt in FORMATS}
    for fmt in ("json", "parquet", "vector"):
        rows = by_format[fmt]
        assert rows and all(isinstance(r["speakers"], list) for r in rows), fmt
        assert all(r["speakers"][0] == r["speaker"] for r in rows), fmt  # most words first
        assert {name for r in rows for name in r["speakers"]} == {"JFK", "Narrator"}, fmt
        assert [r["speakers"] for r in rows] == [r["speakers"] for r in by_format["json"]]
    # csv keeps one cell, the names joined with "; "
    for csv_row, row in zip(by_format["csv"], by_format["json"], strict=True):
        assert csv_row["speakers"] == "; ".join(row["speakers"])
        assert csv_row["speakers"].split("; ") == row["speakers"]
    # duration_s is the whole recording's, on every chunk
    durations = {r["duration_s"] for r in by_format["json"]}
    assert len(durations) == 1 and durations.pop() == pytest.approx(jobs["talk_s"], abs=0.05)


def test_two_jobs_exported_the_same_day_get_two_files(api: Api, jobs: dict[str, Any]) -> None:
    first, first_body = export(api, jobs["clips"], "json")
    second, second_body = export(api, jobs["talk"], "json")
    again, again_body = export(api, jobs["clips"], "json")
    # The download name is the contract's (bulk-embeddings-YYYYMMDD.json) for all three.
    day = first["filename"].removeprefix("bulk-embeddings-").removesuffix(".json")
    assert len(day) == 8 and day.isdigit() and day.startswith(f"{datetime.now(UTC):%Y}")
    assert first["filename"] == second["filename"] == f"bulk-embeddings-{day}.json"
    # On the server each export has its own file, named by the job and the day.
    with api.client.app.state.ctx.db.session() as s:  # type: ignore[attr-defined]
        paths = {
            e.export_id: Path(str(e.path))
            for e in s.scalars(select(Export).where(Export.format == "json"))
        }
    ours = [paths[s["export_id"]] for s in (first, second, again)]
    assert len(set(ours)) == 3 and all(p.is_file() for p in ours)
    assert ours[0].name.startswith(f"clips-{day}-") and ours[2].name.startswith(f"clips-{day}-")
    assert ours[1].name.startswith(f"talk_1-{day}-")  # ':' is no file-name character
    assert all(p.suffix == ".json" for p in ours)
    # Neither overwrote the other: each download is its own job's chunks.
    assert first_body != second_body
    assert {c["job_id"] for c in json.loads(first_body)["chunks"]} == {"clips"}
    assert {c["job_id"] for c in json.loads(second_body)["chunks"]} == {"talk:1"}
    assert json.loads(again_body)["chunks"] == json.loads(first_body)["chunks"]
    r = api.client.get(first["download_url"], headers=api.h())
    assert r.content == first_body and ours[0].read_bytes() == first_body


def test_an_empty_job_exports_with_a_warning(api: Api, jobs: dict[str, Any]) -> None:
    warning = (
        "the job has no chunks: none of its 1 items completed (the job is failed); "
        "the export holds no records"
    )
    for fmt in FORMATS:
        status, content = export(api, jobs["quiet"], fmt)
        assert status["warnings"] == [warning], fmt
        assert rows_of(fmt, content) == [], fmt
    schema = pq.read_schema(io.BytesIO(export(api, jobs["quiet"], "parquet")[1]))
    assert schema.names == list(FIELD_NAMES) and schema.metadata is not None
    # an export with chunks has no warning
    assert export(api, jobs["clips"], "csv")[0]["warnings"] == []
