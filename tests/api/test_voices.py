"""The speaker library end to end, on two excerpts of one real meeting with the same two
people (MEE009 and MEE012 in the references): a voice named in one is recognised in the
other, never on the other person, and never for another user."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ragcast.api.app import create_app
from ragcast.auth import create_key
from ragcast.providers.diarizers.score import read_rttm
from tests.conftest import DATA, PREFIX, Api, make_settings

CONVERSATIONS = DATA / "conversations"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    settings = make_settings(tmp_path_factory.mktemp("voices"))
    app = create_app(settings)
    with app.state.ctx.db.session() as s:
        keys = {name: create_key(s, name)[0] for name in ("alice", "bob")}
    with TestClient(app) as client:
        yield Api(client=client, settings=settings, keys=keys)


def _diarized(api: Api, job: str, wav: Path, user: str = "alice") -> dict[str, Any]:
    doc = api.upload(wav, user=user)
    r = api.submit(
        job, [doc], user=user, settings={"diarize": True, "chunkSize": 64, "chunkOverlap": 8}
    )
    assert r.status_code == 200, r.text
    status = api.wait(job, user=user)
    assert status["status"] == "completed", status
    r = api.client.get(f"{PREFIX}/job/{job}/items/0/transcript", headers=api.h(user))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _who(transcript: dict[str, Any], rttm: Path) -> dict[str, str]:
    """Each label -> the reference speaker its words overlap most."""
    reference = read_rttm(rttm)
    shared: dict[str, dict[str, float]] = {}
    for segment in transcript["segments"]:
        for word in segment["words"]:
            label = word["speaker"]
            if label is None or word["start"] is None:
                continue
            for turn in reference:
                both = min(word["end"], turn.end) - max(word["start"], turn.start)
                if both > 0:
                    row = shared.setdefault(label, {})
                    row[turn.speaker] = row.get(turn.speaker, 0.0) + both
    return {label: max(row, key=row.__getitem__) for label, row in shared.items()}


@pytest.fixture(scope="module")
def named(api: Api) -> dict[str, str]:
    """dev00 diarized, each speaker named after the reference speaker it is."""
    first = _diarized(api, "meeting-0", CONVERSATIONS / "dev00.wav")
    who = _who(first, CONVERSATIONS / "dev00.rttm")
    assert set(who.values()) == {"MEE009", "MEE012"}, who
    r = api.client.patch(f"{PREFIX}/job/meeting-0/items/0/speakers", json=who, headers=api.h())
    assert r.status_code == 200, r.text
    return who


def test_naming_a_speaker_keeps_the_voice_in_the_library(api: Api, named: dict[str, str]) -> None:
    r = api.client.get(f"{PREFIX}/speakers", headers=api.h())
    assert r.status_code == 200, r.text
    body = r.json()
    assert {v["name"] for v in body["speakers"]} == set(named.values())
    assert all(v["samples"] >= 1 and v["speech_s"] > 2 for v in body["speakers"])
    assert 0 < body["threshold"] < 1
    # another user's library is their own
    assert api.client.get(f"{PREFIX}/speakers", headers=api.h("bob")).json()["speakers"] == []


def test_the_same_voice_is_recognised_in_another_recording(api: Api, named: dict[str, str]) -> None:
    second = _diarized(api, "meeting-1", CONVERSATIONS / "dev01.wav")
    # words carry the name shown: each recognised name -> the reference speaker it is
    truth = _who(second, CONVERSATIONS / "dev01.rttm")
    recognised = {s["label"]: s["recognised"] for s in second["speakers"] if s["recognised"]}
    assert recognised, second["speakers"]
    names = {s["label"]: s["name"] for s in second["speakers"]}
    for label, match in recognised.items():
        assert names[label] == match["name"]
        assert truth[match["name"]] == match["name"], (label, match, truth)  # never the other
        assert match["score"] >= api.settings.voice_match_threshold
    # the name reaches search: the speaker filter finds the chunks they speak in
    name = next(iter(recognised.values()))["name"]
    said = [s["text"] for s in second["segments"] if s["speaker"] == name]
    word = max((w.strip(".,?!") for t in said for w in t.split()), key=len)
    r = api.client.post(
        f"{PREFIX}/search",
        json={"query": word, "speaker": name, "job_id": "meeting-1", "mode": "lexical"},
        headers=api.h(),
    )
    assert r.status_code == 200, r.text
    hits = r.json()["results"]
    assert hits and all(name in hit["speakers"] for hit in hits), (word, hits)
    # bob's recording of the same people is not named by alice's voices
    theirs = _diarized(api, "meeting-1", CONVERSATIONS / "dev01.wav", user="bob")
    assert all(s["recognised"] is None for s in theirs["speakers"])


def test_forgetting_a_voice_and_bad_names(api: Api, named: dict[str, str]) -> None:
    name = sorted(named.values())[0]
    r = api.client.delete(f"{PREFIX}/speakers/{name}", headers=api.h())
    assert r.status_code == 200, r.text
    assert r.json()["name"] == name and r.json()["forgotten"] >= 1
    again = api.client.delete(f"{PREFIX}/speakers/{name}", headers=api.h())
    assert again.status_code == 404 and again.json()["error"]
    long = api.client.delete(f"{PREFIX}/speakers/{'x' * 101}", headers=api.h())
    assert long.status_code == 400 and "name" in long.text
    left = {
        v["name"] for v in api.client.get(f"{PREFIX}/speakers", headers=api.h()).json()["speakers"]
    }
    assert name not in left


def test_a_minority_speaker_is_found_by_name(api: Api, tmp_path: Path) -> None:
    """JFK's 11 s, then another speaker's 27 s, chunks of 64 tokens: his sentence is a chunk
    of his own, and the speaker filter finds it by his name."""
    import numpy as np
    from faster_whisper import decode_audio

    from tests.providers.diarizers.mixtures import write_wav

    parts = [
        decode_audio(str(DATA / name), sampling_rate=16_000)
        for name in ("clip01.flac", "clip09.wav")
    ]
    gap = np.zeros(8_000, dtype=np.float32)
    wav = write_wav(
        np.concatenate([parts[0], gap, parts[1]]).astype(np.float32), tmp_path / "two.wav"
    )
    body = _diarized(api, "jfk-then-another", wav)
    first = body["segments"][0]
    assert (
        "ask not"
        in " ".join(s["text"] for s in body["segments"] if s["speaker"] == first["speaker"]).lower()
    )
    r = api.client.patch(
        f"{PREFIX}/job/jfk-then-another/items/0/speakers",
        json={first["speaker"]: "JFK"},
        headers=api.h(),
    )
    assert r.status_code == 200, r.text
    for mode in ("hybrid", "dense", "lexical"):
        r = api.client.post(
            f"{PREFIX}/search",
            json={
                "query": "ask not what your country can do",
                "speaker": "JFK",
                "job_id": "jfk-then-another",
                "mode": mode,
            },
            headers=api.h(),
        )
        assert r.status_code == 200, r.text
        hits = r.json()["results"]
        assert hits and "ask not what your country" in hits[0]["text"].lower(), (mode, hits)
        assert hits[0]["speaker"] == "JFK" and hits[0]["end_s"] < 13.0
