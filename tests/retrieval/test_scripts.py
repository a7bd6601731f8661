"""Chinese and Japanese recordings read and are found as they were said: chunk text,
hits and exports joined as the script writes them, words of each transcript found
lexically, simplified and traditional Chinese finding each other, and the script a job
asks for (``settings.chinese_script``)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from ragcast.api.app import create_app
from ragcast.auth import create_key
from ragcast.store.models import Chunk, Item, Job, Transcript
from ragcast.text import TIGHT
from tests.conftest import DATA, PREFIX, Api, make_settings

pytestmark = pytest.mark.slow

#: a space between two characters written without one
SPACED = re.compile(f"[{TIGHT}] [{TIGHT}]")
RECORDINGS = ("clip16.wav", "clip24.mp3", "clip02.wav")  # zh, ja, and English beside them


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """One app with alice's job over the recordings, and bob's of the Chinese one written
    simplified (another user: a content's vectors are shared by its user's jobs)."""
    tmp = tmp_path_factory.mktemp("scripts")
    settings = make_settings(tmp)
    app = create_app(settings)
    with app.state.ctx.db.session() as s:
        keys = {name: create_key(s, name)[0] for name in ("alice", "bob")}
    with TestClient(app) as client:
        api = Api(client=client, settings=settings, keys=keys)
        docs = [api.upload(DATA / name) for name in RECORDINGS]
        assert api.submit("spoken", docs).status_code == 200
        simplified = {"chunkSize": 256, "chunkOverlap": 32, "chinese_script": "simplified"}
        chinese = api.upload(DATA / RECORDINGS[0], user="bob")
        answer = api.submit("simplified", [chinese], user="bob", settings=simplified)
        assert answer.status_code == 200, answer.text
        assert api.wait("spoken", timeout=600)["status"] == "completed"
        assert api.wait("simplified", user="bob", timeout=600)["status"] == "completed"
        yield api


def stored(api: Api, job_id: str) -> dict[str, tuple[str, list[str]]]:
    """Each item's transcript text and chunk texts, by file name."""
    ctx = api.client.app.state.ctx  # type: ignore[attr-defined]
    out: dict[str, tuple[str, list[str]]] = {}
    with ctx.db.session() as s:
        items = s.scalars(select(Item).join(Job).where(Job.job_id == job_id)).all()
        for item in items:
            transcript = s.get(Transcript, item.id)
            assert transcript is not None
            chunks = s.scalars(
                select(Chunk.text).where(Chunk.item_id == item.id).order_by(Chunk.chunk_index)
            ).all()
            out[item.title or ""] = (transcript.text, list(chunks))
    return out


def search(
    api: Api, query: str, mode: str = "lexical", user: str = "alice", **extra: Any
) -> list[dict[str, Any]]:
    r = api.client.post(
        f"{PREFIX}/search", json={"query": query, "mode": mode, **extra}, headers=api.h(user)
    )
    assert r.status_code == 200, r.text
    return list(r.json()["results"])


def test_chunk_text_is_the_transcripts_text(api: Api) -> None:
    texts = stored(api, "spoken")
    for name in ("clip16.wav", "clip24.mp3"):
        transcript, chunks = texts[name]
        print(name, transcript, chunks)
        assert "".join(chunks) == transcript  # one chunk each: Whisper's segments as said
        assert not SPACED.search(transcript) and not any(SPACED.search(c) for c in chunks)
    assert texts["clip16.wav"][0].startswith("廣州市")  # Whisper base writes traditional
    assert " " in texts["clip02.wav"][1][0]  # English keeps its spaces


def test_hits_and_exports_have_no_space_inside_cjk(api: Api) -> None:
    for query in ("廣州市", "電球", "キャンプ"):
        for mode in ("lexical", "hybrid", "dense"):
            hits = search(api, query, mode)
            assert hits and not any(SPACED.search(h["text"]) for h in hits), (query, mode)
    r = api.client.post(
        f"{PREFIX}/export", json={"job_id": "spoken", "format": "json"}, headers=api.h()
    )
    assert r.status_code == 200, r.text
    export_id = r.json()["export_id"]
    for _ in range(300):
        status = api.client.get(f"{PREFIX}/export/{export_id}/status", headers=api.h()).json()
        if status["status"] == "completed":
            break
        time.sleep(0.1)
    body = api.client.get(f"{PREFIX}/download/{export_id}", headers=api.h()).content
    chunks = json.loads(body)["chunks"]
    assert {c["language"] for c in chunks} >= {"zh", "ja"}
    assert not any(SPACED.search(c["text"]) for c in chunks)
    for index in range(2):
        for fmt in ("txt", "srt", "json"):
            r = api.client.get(
                f"{PREFIX}/job/spoken/items/{index}/transcript",
                params={"format": fmt},
                headers=api.h(),
            )
            assert r.status_code == 200 and not SPACED.search(r.text), (index, fmt)


def test_a_word_cut_from_each_transcript_finds_its_recording_first(api: Api) -> None:
    texts = stored(api, "spoken")
    for name, words in (("clip16.wav", ("廣州", "協會")), ("clip24.mp3", ("電球", "外れ"))):
        for word in words:
            assert word in texts[name][0]  # cut from what Whisper wrote
            hits = search(api, word)
            assert hits and hits[0]["title"] == name, (word, hits[:1])


def test_simplified_and_traditional_find_each_other(api: Api) -> None:
    for query in ("广州市", "廣州市", "广州市协会"):
        for mode in ("lexical", "hybrid"):
            hits = search(api, query, mode)
            assert hits[0]["title"] == "clip16.wav", (query, mode, hits[:1])
            assert hits[0]["text"].startswith("廣州市")  # shown as transcribed


def test_a_job_may_ask_for_simplified_chinese(api: Api) -> None:
    ((transcript, chunks),) = stored(api, "simplified").values()
    assert transcript.startswith("广州市") and chunks == [transcript]
    assert not re.search("[廣產協會]", transcript)
    for mode in ("lexical", "hybrid"):
        hits = search(api, "廣州市", mode, user="bob")
        assert hits and hits[0]["text"].startswith("广州市")  # found from the other script
    r = api.client.get(f"{PREFIX}/job/simplified/items/0/transcript", headers=api.h("bob"))
    assert r.json()["segments"][0]["text"].startswith("广州市")


def test_an_unknown_chinese_script_is_refused(api: Api) -> None:
    settings = {"chunkSize": 256, "chunkOverlap": 32, "chinese_script": "pinyin"}
    r = api.submit("bad-script", ["doc"], settings=settings)
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["error"] == "validation_error"
    assert body["details"]["field"] == "settings.chinese_script", body
