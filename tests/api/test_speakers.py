"""Speakers end to end: a diarized job, its transcript in every format, names, search."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from ragcast.api.app import create_app
from ragcast.auth import create_key
from tests.conftest import DATA, PREFIX, Api, make_settings
from tests.providers.diarizers.mixtures import conversation, write_wav

JOB = "talk"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    tmp = tmp_path_factory.mktemp("speakers")
    settings = make_settings(tmp)
    app = create_app(settings)
    with app.state.ctx.db.session() as s:
        keys = {name: create_key(s, name)[0] for name in ("alice", "bob")}
    with TestClient(app) as client:
        yield Api(client=client, settings=settings, keys=keys)


@pytest.fixture(scope="module")
def talk(api: Api, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A two-speaker recording, diarized; small chunks so turns decide boundaries."""
    mixture = conversation(DATA)
    path = write_wav(mixture.audio, tmp_path_factory.mktemp("wav") / "talk.wav")
    doc = api.upload(path)
    settings = {"chunkSize": 48, "chunkOverlap": 8, "diarize": True}
    r = api.submit(JOB, [doc], settings=settings)
    assert r.status_code == 200, r.text
    status = api.wait(JOB)
    assert status["status"] == "completed", status
    return {"mixture": mixture, "doc": doc}


def transcript(api: Api, fmt: str = "json", index: int = 0, job: str = JOB) -> Any:
    r = api.client.get(
        f"{PREFIX}/job/{job}/items/{index}/transcript", params={"format": fmt}, headers=api.h()
    )
    assert r.status_code == 200, r.text
    return r.json() if fmt == "json" else r.text


def search(api: Api, **body: Any) -> list[dict[str, Any]]:
    r = api.client.post(f"{PREFIX}/search", json=body, headers=api.h())
    assert r.status_code == 200, r.text
    return list(r.json()["results"])


def test_a_diarized_transcript_labels_every_segment_and_word(
    api: Api, talk: dict[str, Any]
) -> None:
    body = transcript(api)
    assert body["speakers"] == [
        {"label": "SPEAKER_00", "name": "SPEAKER_00", "recognised": None},
        {"label": "SPEAKER_01", "name": "SPEAKER_01", "recognised": None},
    ]
    assert body["source"] == "asr" and body["language"] == "en"
    segments = body["segments"]
    assert segments and all(s["speaker"] in ("SPEAKER_00", "SPEAKER_01") for s in segments)
    for seg in segments:
        assert all(w["speaker"] == seg["speaker"] for w in seg["words"])  # split at turns
    # the reference turns alternate JFK / reader; the transcript's speakers follow them
    reference = talk["mixture"].turns
    edges = [e for t in reference for e in (t.start, t.end)]
    for seg in segments:
        middle = (seg["start"] + seg["end"]) / 2
        if seg["end"] - seg["start"] < 1.0 and min(abs(middle - e) for e in edges) < 0.5:
            continue  # a lone word at a change of speaker: either side is right to 0.5 s
        truth = next(t.speaker for t in reference if t.start - 0.5 <= middle <= t.end + 0.5)
        expected = "SPEAKER_00" if truth == reference[0].speaker else "SPEAKER_01"
        assert seg["speaker"] == expected, (seg, reference)
    items = api.client.get(f"{PREFIX}/job/{JOB}/items", headers=api.h()).json()["items"]
    assert items[0]["stage"] == "indexed"


def test_text_formats_put_the_speaker_before_each_cue(api: Api, talk: dict[str, Any]) -> None:
    srt = transcript(api, "srt")
    blocks = srt.strip().split("\n\n")
    assert blocks[0].startswith("1\n00:00:")
    assert all(b.splitlines()[2].startswith(("SPEAKER_00: ", "SPEAKER_01: ")) for b in blocks)
    assert " --> " in blocks[0].splitlines()[1] and "," in blocks[0].splitlines()[1]
    vtt = transcript(api, "vtt")
    assert vtt.startswith("WEBVTT\n") and "<v SPEAKER_00>" in vtt and "<v SPEAKER_01>" in vtt
    txt = transcript(api, "txt")
    paragraphs = txt.strip().split("\n\n")
    assert len(paragraphs) >= 3 and paragraphs[0].startswith("SPEAKER_00: ")
    assert "ask what you can do for your country" in txt.lower()
    r = api.client.get(
        f"{PREFIX}/job/{JOB}/items/0/transcript", params={"format": "srt"}, headers=api.h()
    )
    assert r.headers["content-type"].startswith("application/x-subrip")


def test_chunks_carry_their_speakers_into_exports_and_search(
    api: Api, talk: dict[str, Any]
) -> None:
    rows = _csv_export(api)
    assert rows and all(r["speaker"] in ("SPEAKER_00", "SPEAKER_01") for r in rows)
    assert {r["speaker"] for r in rows} == {"SPEAKER_00", "SPEAKER_01"}
    for row in rows:
        assert row["speakers"].split("; ")[0] == row["speaker"]
    # turns decide chunk boundaries: most chunks hold one speaker only
    single = sum(1 for r in rows if ";" not in r["speakers"])
    assert single >= len(rows) - 1, rows
    hits = search(api, query="ask what you can do for your country", top_k=3)
    assert hits[0]["speaker"] == "SPEAKER_00" and hits[0]["speakers"][0] == "SPEAKER_00"
    only = search(api, query="Dashwood prudently in his power", speaker="SPEAKER_01", top_k=20)
    assert only and all("SPEAKER_01" in h["speakers"] for h in only)
    # the reader's chunks hold none of JFK's words
    theirs = search(api, query="ask not what your country", speaker="SPEAKER_01", top_k=20)
    assert all("country" not in h["text"] for h in theirs)


def _csv_export(api: Api, fmt: str = "csv") -> list[dict[str, Any]]:
    r = api.client.post(f"{PREFIX}/export", json={"job_id": JOB, "format": fmt}, headers=api.h())
    assert r.status_code == 200, r.text
    url = r.json()["status_url"]
    for _ in range(400):
        status = api.client.get(url, headers=api.h()).json()
        if status["status"] in ("completed", "failed"):
            break
        time.sleep(0.05)
    assert status["status"] == "completed", status
    content = api.client.get(status["download_url"], headers=api.h()).content
    if fmt == "parquet":
        return list(pq.read_table(io.BytesIO(content)).to_pylist())
    if fmt == "vector":
        return [json.loads(line)["metadata"] for line in content.decode().splitlines()]
    return list(csv.DictReader(io.StringIO(content.decode())))


def test_named_speakers_show_everywhere_without_re_embedding(
    api: Api, talk: dict[str, Any]
) -> None:
    before = _csv_export(api, "parquet")
    r = api.client.patch(
        f"{PREFIX}/job/{JOB}/items/0/speakers",
        json={"SPEAKER_00": "  John   Kennedy ", "SPEAKER_01": "Reader"},
        headers=api.h(),
    )
    assert r.status_code == 200, r.text
    assert r.json()["speakers"] == [
        {"label": "SPEAKER_00", "name": "John Kennedy"},
        {"label": "SPEAKER_01", "name": "Reader"},
    ]
    assert r.json()["updated_chunks"] == len(before)
    body = transcript(api)
    assert {s["speaker"] for s in body["segments"]} == {"John Kennedy", "Reader"}
    assert "John Kennedy: " in transcript(api, "srt") and "<v Reader>" in transcript(api, "vtt")
    after = _csv_export(api, "parquet")
    assert {r["speaker"] for r in after} == {"John Kennedy", "Reader"}
    assert [r["embedding"] for r in after] == [r["embedding"] for r in before]
    vector_rows = _csv_export(api, "vector")
    assert {r["speaker"] for r in vector_rows} == {"John Kennedy", "Reader"}
    # the vector store's metadata changed too: dense hits come from it
    for mode in ("dense", "lexical", "hybrid"):
        hits = search(api, query="ask what you can do for your country", mode=mode, top_k=3)
        assert hits[0]["speaker"] == "John Kennedy", (mode, hits[0])
        named = search(api, query="Dashwood", mode=mode, speaker="Reader", top_k=20)
        assert named and all("Reader" in h["speakers"] for h in named), mode
        assert search(api, query="country", mode=mode, speaker="SPEAKER_01") == []
    # null forgets a name: the label is back
    r = api.client.patch(
        f"{PREFIX}/job/{JOB}/items/0/speakers", json={"SPEAKER_01": None}, headers=api.h()
    )
    assert r.json()["speakers"][1] == {"label": "SPEAKER_01", "name": "SPEAKER_01"}
    assert search(api, query="Dashwood", mode="dense", speaker="SPEAKER_01", top_k=20)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"SPEAKER_07": "Ghost"}, "SPEAKER_07"),
        ({"SPEAKER_00": "a; b"}, "SPEAKER_00"),
        ({"SPEAKER_00": "x" * 65}, "SPEAKER_00"),
        ({}, "body"),
        (["SPEAKER_00"], "body"),
        ({"SPEAKER_00": 3}, "SPEAKER_00"),
    ],
)
def test_bad_speaker_names_are_a_400_naming_the_field(
    api: Api, talk: dict[str, Any], body: Any, field: str
) -> None:
    r = api.client.patch(f"{PREFIX}/job/{JOB}/items/0/speakers", json=body, headers=api.h())
    assert r.status_code == 400, r.text
    assert r.json()["details"]["field"] == field, r.json()


def test_transcripts_are_the_owners_alone_and_bad_requests_say_why(
    api: Api, talk: dict[str, Any]
) -> None:
    url = f"{PREFIX}/job/{JOB}/items/0/transcript"
    r = api.client.get(url, params={"format": "xml"}, headers=api.h())
    assert r.status_code == 400 and r.json()["details"]["field"] == "format"
    assert api.client.get(url, headers=api.h("bob")).status_code == 404
    assert api.client.get(url).status_code == 401
    missing = api.client.get(f"{PREFIX}/job/{JOB}/items/9/transcript", headers=api.h())
    assert missing.status_code == 404 and "no item 9" in missing.json()["message"]
    r = api.client.patch(
        f"{PREFIX}/job/{JOB}/items/0/speakers", json={"SPEAKER_00": "x"}, headers=api.h("bob")
    )
    assert r.status_code == 404


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"diarize": "yes"}, "settings.diarize"),
        ({"diarize": 1}, "settings.diarize"),
        ({"diarize": True, "min_speakers": 3, "max_speakers": 2}, "settings.max_speakers"),
        ({"diarize": True, "min_speakers": 0}, "settings.min_speakers"),
        ({"diarize": True, "max_speakers": "4"}, "settings.max_speakers"),
    ],
)
def test_bad_diarization_settings_are_a_400_naming_the_field(
    api: Api, settings: dict[str, Any], field: str
) -> None:
    r = api.submit("bad-diarize", ["doc-x"], settings=settings)
    assert r.status_code == 400, r.text
    assert r.json()["details"]["field"] == field


def test_a_job_without_diarize_has_a_plain_transcript_and_one_speaker_has_one_label(
    api: Api, talk: dict[str, Any]
) -> None:
    plain = api.upload(DATA / "clip02.wav")
    lone = api.upload(DATA / "clip09.wav")
    assert api.submit("plain", [plain]).status_code == 200
    settings = {"diarize": True, "max_speakers": 4}
    assert api.submit("lone", [lone], settings=settings).status_code == 200
    assert api.wait("plain")["status"] == "completed"
    assert api.wait("lone")["status"] == "completed"
    body = transcript(api, job="plain")
    assert body["speakers"] == [] and all(s["speaker"] is None for s in body["segments"])
    assert "quilter" in transcript(api, "txt", job="plain").lower()
    assert not transcript(api, "srt", job="plain").splitlines()[2].startswith("SPEAKER")
    items = api.client.get(f"{PREFIX}/job/plain/items", headers=api.h()).json()["items"]
    assert items[0]["stage"] == "indexed"
    one = transcript(api, job="lone")
    assert [s["label"] for s in one["speakers"]] == ["SPEAKER_00"]
    assert {s["speaker"] for s in one["segments"]} == {"SPEAKER_00"}


def test_a_document_in_a_diarized_job_gets_no_speakers_and_a_note(api: Api, tmp_path: Path) -> None:
    doc = tmp_path / "notes.txt"
    doc.write_text("Minutes of the meeting. Nobody spoke; this was written.\n")
    r = api.submit("doc-diarize", [api.upload(doc)], settings={"diarize": True})
    assert r.status_code == 200, r.text
    assert api.wait("doc-diarize")["status"] == "completed"
    item = api.client.get(f"{PREFIX}/job/doc-diarize/items", headers=api.h()).json()["items"][0]
    assert any("speakers not labelled" in w for w in item["warnings"])
    assert transcript(api, job="doc-diarize")["speakers"] == []
