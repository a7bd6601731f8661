"""Every language of the shared recordings, through the real service and the real models.

ragcast's transcripts are scored against the references and against bare faster-whisper
run with the same model and settings; each item's language is detected right, stored,
filtered on and exported; nonsense from a model that does not know the language, silence
and bad language codes get clear errors.
"""

from __future__ import annotations

import json
import re
import time
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jiwer
import pytest
from faster_whisper import WhisperModel
from sqlalchemy import select
from typer.testing import CliRunner

from ragcast.api.app import create_app
from ragcast.cli import app as cli_app
from ragcast.errors import ConfigurationError
from ragcast.providers.transcribers.models import resolve_model
from ragcast.store.models import Item, Transcript
from tests.api.test_end_to_end import normalise
from tests.conftest import PREFIX, Api, Recording, make_settings, recordings

pytestmark = pytest.mark.slow

#: scored by characters, not words
CHARACTER_LANGUAGES = {"zh", "ja", "ko"}


def other_languages() -> list[Recording]:
    return [r for r in recordings() if r.language != "en"]


def error_rate(reference: str, hypothesis: str, language: str) -> float:
    """WER, or CER for languages written without spaces; punctuation and case ignored."""
    if language in CHARACTER_LANGUAGES:
        chars = [re.sub(r"[^\w]", "", t) for t in (reference, hypothesis)]
        return float(jiwer.cer(chars[0], chars[1] or " "))
    return float(jiwer.wer(normalise(reference), normalise(hypothesis) or " "))


def bare_transcripts(paths: list[Path]) -> list[str]:
    """faster-whisper called directly: the packaged base model, int8, beam 5, VAD."""
    model = WhisperModel(resolve_model("base"), device="cpu", compute_type="int8")
    out = []
    for path in paths:
        segments, _ = model.transcribe(
            str(path), beam_size=5, vad_filter=True, word_timestamps=True
        )
        out.append(" ".join(s.text.strip() for s in segments))
    return out


def items(api: Api, job_id: str) -> list[dict[str, Any]]:
    r = api.client.get(f"{PREFIX}/job/{job_id}/items", headers=api.h())
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


def test_every_language_is_detected_and_transcribed_as_well_as_the_bare_engine(
    api: Api,
) -> None:
    recs = other_languages()
    assert {r.language for r in recs} >= {"de", "zh", "ja", "sv"}
    docs = [api.upload(r.path) for r in recs]
    assert api.submit("langs", docs).status_code == 200
    status = api.wait("langs", timeout=600)
    assert status["status"] == "completed", status
    listed = items(api, "langs")
    for rec, item in zip(recs, listed, strict=True):
        assert item["status"] == "completed", item
        assert item["language"] == rec.language, (rec.path.name, item)
        assert item["language_probability"] > 0.5
        assert item["warnings"] == []

    with api.client.app.state.ctx.db.session() as s:  # type: ignore[attr-defined]
        rows = s.execute(select(Item.index, Transcript.text, Transcript.data).join(Transcript))
        stored = {index: (text, data) for index, text, data in rows}
    bare = bare_transcripts([r.path for r in recs])
    for n, rec in enumerate(recs):
        text, data = stored[n]
        ours = error_rate(rec.reference, text, rec.language)
        theirs = error_rate(rec.reference, bare[n], rec.language)
        print(f"{rec.path.name} ({rec.language}): ragcast {ours:.3f}, bare {theirs:.3f}")
        assert ours <= theirs + 1e-9, (rec.path.name, text, bare[n])
        # Word timestamps in every language: deep links rely on them.
        words = [w for seg in data["segments"] for w in seg["words"]]
        assert words and all(0 <= w["start"] <= w["end"] <= rec.duration_s + 1 for w in words)

    # Search: the language filter, and each hit says its language.
    german = next(n for n, r in enumerate(recs) if r.language == "de")
    r = api.client.post(
        f"{PREFIX}/search",
        json={"query": "Raum Leichenhalle genutzt", "top_k": 10, "language": "de"},
        headers=api.h(),
    )
    assert r.status_code == 200, r.text
    hits = r.json()["results"]
    assert hits and {h["language"] for h in hits} == {"de"}
    assert hits[0]["source"] == recs[german].path.name
    r = api.client.post(
        f"{PREFIX}/search", json={"query": "Raum", "language": "ko"}, headers=api.h()
    )
    assert r.status_code == 200 and r.json()["results"] == []

    # Every export format carries the language.
    r = api.client.post(
        f"{PREFIX}/export", json={"job_id": "langs", "format": "json"}, headers=api.h()
    )
    assert r.status_code == 200, r.text
    export_id = r.json()["export_id"]
    for _ in range(200):
        st = api.client.get(f"{PREFIX}/export/{export_id}/status", headers=api.h()).json()
        if st["status"] == "completed":
            break
        time.sleep(0.1)
    body = api.client.get(f"{PREFIX}/download/{export_id}", headers=api.h()).content
    chunks = json.loads(body)["chunks"]
    assert {c["language"] for c in chunks} == {r.language for r in recs}


def test_a_job_that_names_its_language_is_not_detected(api: Api) -> None:
    german = next(r for r in other_languages() if r.language == "de")
    settings = {"chunkSize": 256, "chunkOverlap": 32, "language": "de"}
    assert api.submit("named", [api.upload(german.path)], settings=settings).status_code == 200
    assert api.wait("named")["status"] == "completed"
    (item,) = items(api, "named")
    assert item["language"] == "de" and item["language_probability"] is None


def test_an_english_only_model_refuses_other_languages_instead_of_indexing_nonsense(
    api_factory: Callable[..., Api], english_recordings: list[Recording]
) -> None:
    api = api_factory(whisper_model="tiny.en")
    german = next(r for r in other_languages() if r.language == "de")
    docs = [api.upload(german.path), api.upload(english_recordings[1].path)]
    assert api.submit("tiny", docs).status_code == 200
    status = api.wait("tiny")
    assert status["status"] == "completed"
    assert status["result"]["failed_items"] == 1
    failed, done = items(api, "tiny")
    assert failed["status"] == "failed" and "English only" in failed["error"], failed
    assert failed["chunks"] == 0
    assert done["status"] == "completed" and done["language"] == "en"
    # Naming another language is refused at submission.
    r = api.submit("tiny-de", docs, settings={"chunkSize": 256, "language": "de"})
    assert r.status_code == 400
    assert r.json()["details"]["field"] == "settings.language"
    assert "English only" in r.json()["details"]["issue"]


def test_a_recording_without_speech_fails_with_a_clear_reason(api: Api, tmp_path: Path) -> None:
    silent = tmp_path / "silence.wav"
    with wave.open(str(silent), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\x00\x00" * 16000 * 5)
    assert api.submit("quiet", [api.upload(silent)]).status_code == 200
    status = api.wait("quiet")
    assert status["status"] == "failed"
    (item,) = items(api, "quiet")
    assert item["error"] == "no speech was found in the recording"


@pytest.mark.parametrize("value", ["xx", "klingon", 7])
def test_an_unknown_language_is_a_400_naming_the_field(api: Api, value: object) -> None:
    r = api.submit("bad-lang", ["doc"], settings={"chunkSize": 256, "language": value})
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["error"] == "validation_error"
    assert body["details"]["field"] == "settings.language"
    r = api.client.post(f"{PREFIX}/search", json={"query": "x", "language": "xx"}, headers=api.h())
    assert r.status_code == 400 and r.json()["details"]["field"] == "language"


def test_a_model_that_cannot_be_had_fails_at_start_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigurationError, match="neither installed nor reachable"):
        create_app(make_settings(tmp_path, whisper_model="large-v9"))
    env = {
        "RAGCAST_DATA_DIR": str(tmp_path / "cli"),
        "RAGCAST_WHISPER_MODEL": "large-v9",
        "HF_HUB_OFFLINE": "1",
    }
    result = CliRunner().invoke(cli_app, ["serve", "--port", "1"], env=env)
    assert result.exit_code == 2
    assert "large-v9" in result.output and "neither installed nor reachable" in result.output
