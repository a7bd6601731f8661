"""The GE2E diarizer on real recordings of different speakers strung together."""

from __future__ import annotations

import numpy as np
import pytest

from ragcast.providers.diarizers.base import Turn
from ragcast.providers.diarizers.ge2e import Ge2eDiarizer, mel_spectrogram
from ragcast.providers.diarizers.score import frame_accuracy
from tests.conftest import DATA
from tests.providers.diarizers.mixtures import RATE, Mixture, build, speaker_parts


@pytest.fixture(scope="module")
def mixtures() -> list[Mixture]:
    return build(DATA, count=12, seed=7)


@pytest.fixture(scope="module")
def diarizer() -> Ge2eDiarizer:
    return Ge2eDiarizer()


def test_mixtures_are_what_the_scoring_assumes(mixtures: list[Mixture]) -> None:
    assert mixtures[0].speakers == 1
    assert {m.speakers for m in mixtures[1:]} == {2, 3, 4}
    assert len({t.speaker for m in mixtures for t in m.turns}) >= 6
    for m in mixtures[1:]:
        assert all(a.speaker != b.speaker for a, b in zip(m.turns, m.turns[1:], strict=False))


def test_frame_accuracy_and_speaker_count_on_mixtures(
    mixtures: list[Mixture], diarizer: Ge2eDiarizer
) -> None:
    accuracies: list[float] = []
    right = 0
    for m in mixtures:
        found = diarizer.diarize(m.audio)
        accuracies.append(frame_accuracy(m.turns, found.turns))
        right += len(found.speakers) == m.speakers
        assert found.speakers == [f"SPEAKER_{n:02d}" for n in range(len(found.speakers))]
        pairs = zip(found.turns, found.turns[1:], strict=False)
        assert all(a.end <= b.start + 1e-6 for a, b in pairs)
    assert float(np.mean(accuracies)) >= 0.85, accuracies
    assert right / len(mixtures) >= 0.8


def test_one_speaker_gets_one_label(diarizer: Ge2eDiarizer) -> None:
    for name, parts in speaker_parts(DATA).items():
        if sum(len(p) for p in parts) / RATE >= 8:
            found = diarizer.diarize(np.concatenate(parts))
            assert found.speakers == ["SPEAKER_00"], name


def test_no_speech_gets_no_turns(diarizer: Ge2eDiarizer) -> None:
    rng = np.random.default_rng(3)
    for audio in (np.zeros(RATE * 5, np.float32), rng.normal(0, 1e-3, RATE * 5)):
        found = diarizer.diarize(audio.astype(np.float32))
        assert found.turns == [] and found.speakers == []
    assert diarizer.diarize(np.zeros(0, np.float32)).turns == []


def test_speaker_bounds_are_obeyed(mixtures: list[Mixture], diarizer: Ge2eDiarizer) -> None:
    four = next(m for m in mixtures if m.speakers == 4)
    assert len(diarizer.diarize(four.audio, max_speakers=2).speakers) <= 2
    two = next(m for m in mixtures if m.speakers == 2)
    assert len(diarizer.diarize(two.audio, min_speakers=3).speakers) >= 3
    single = mixtures[0]
    assert len(diarizer.diarize(single.audio, min_speakers=2, max_speakers=2).speakers) == 2


def test_mel_matches_the_features_the_encoder_was_trained_on() -> None:
    # librosa.feature.melspectrogram(sr=16000, n_fft=400, hop_length=160, n_mels=40) of a
    # 1 kHz tone peaks in band 13 (0-based) of 40 (Slaney mel scale), in 1 + len/160 frames
    t = np.arange(RATE) / RATE
    mel = mel_spectrogram(np.sin(2 * np.pi * 1000 * t).astype(np.float32))
    assert mel.shape == (101, 40)
    assert int(np.argmax(mel[50])) == 13


def test_frame_accuracy_maps_labels_and_counts_misses() -> None:
    ref = [Turn(0, 10, "a"), Turn(10, 20, "b")]
    assert frame_accuracy(ref, [Turn(0, 10, "X"), Turn(10, 20, "Y")]) == pytest.approx(1.0)
    assert frame_accuracy(ref, [Turn(0, 20, "X")]) == pytest.approx(0.5, abs=0.02)
    assert frame_accuracy(ref, [Turn(0, 10, "X")]) == pytest.approx(0.5, abs=0.02)
    assert frame_accuracy(ref, []) == 0.0


def test_hours_of_windows_are_clustered_on_a_sample_in_bounded_memory() -> None:
    from ragcast.providers.diarizers import ge2e

    rng = np.random.default_rng(5)
    centres = rng.normal(size=(2, 256)).astype(np.float32)
    n = ge2e._MAX_CLUSTERED * 3  # about three and a half hours of voice
    who = (np.arange(n) // 700) % 2  # alternating turns of 700 windows
    vectors = centres[who] + rng.normal(scale=0.05, size=(n, 256)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    labels = ge2e._cluster(vectors, np.full(n, 0.5, dtype=np.float32), None, None)
    assert len(np.unique(labels)) == 2
    assert np.array_equal(labels, who) or np.array_equal(labels, 1 - who)
