"""Benchmark: speaker diarization's cost as a share of transcription, and its accuracy.

Every recording of ``shared/data`` (several speakers and languages), in manifest order with
half a second between, repeated until the recording is about ``--minutes`` long, becomes one
16 kHz WAV. ragcast's own transcriber, as the server builds it, transcribes that file (the
model loaded before the clock starts); each diarizer chosen with ``--diarizer`` (``pyannote``,
the default one: segmentation-3.0 + CAM++; ``ge2e``: the earlier GE2E encoder; ``both``),
its models loaded by a first call on a short slice, finds the speakers of the same audio.
They run in the same process, alternating, ``--rounds`` times; each diarizer's ratio of
medians is printed (target: <= 30 %), with its peak resident memory above what the process
held before it ran.

Accuracy follows, for every chosen diarizer:

- real conversations (``shared/data/conversations``: four 30 s recordings with RTTM
  references, two far-field meeting excerpts of the same two people, a four-person meeting
  with much overlap, a two-person talk): diarization error rate as published results score
  it (no collar, overlapped speech included; ``score.der``), per file and pooled over the
  four, with its missed / false alarm / confusion shares and the speakers found against the
  reference's;
- ``--mixtures`` built conversations per seed (``--seeds``), made of parts of the shared
  recordings with known turns (``tests/providers/diarizers/mixtures.py``), scored as frame
  accuracy (1 - DER without overlap, 0.25 s collar) under the best label mapping, and
  whether the number of speakers came out right. GE2E's threshold was chosen on seed 7
  (seeds 11 and 23 held out); the pyannote diarizer's clustering settings on the
  conversations and all three seeds (nothing of them is held out: read its figures so).

    .venv/bin/python -m bench diarization [--minutes 3] [--rounds 1] [--model base]
                                          [--diarizer both|pyannote|ge2e]
                                          [--seeds 7 11 23] [--mixtures 24]
"""

from __future__ import annotations

import argparse
import csv
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray
from tests.providers.diarizers.mixtures import build, write_wav

from bench.pipeline import DATA, SAMPLE_RATE
from ragcast.providers.diarizers.base import Diarization, Diarizer
from ragcast.providers.diarizers.ge2e import Ge2eDiarizer
from ragcast.providers.diarizers.pyannote import SegmentationDiarizer
from ragcast.providers.diarizers.score import DerResult, der, frame_accuracy, read_rttm
from ragcast.providers.registry import Providers
from ragcast.settings import Settings

TARGET = 0.30
CONVERSATIONS = DATA / "conversations"
DIARIZERS: dict[str, Callable[[], Diarizer]] = {
    "pyannote": SegmentationDiarizer,
    "ge2e": Ge2eDiarizer,
}
T = TypeVar("T")


def recording(minutes: float) -> NDArray[np.float32]:
    """All shared recordings in manifest order, half a second apart, repeated to ``minutes``."""
    from faster_whisper import decode_audio

    with (DATA / "manifest.csv").open(newline="") as f:
        files = [DATA / r["file"] for r in csv.DictReader(f)]
    gap = np.zeros(SAMPLE_RATE // 2, dtype=np.float32)
    parts = [decode_audio(str(p), sampling_rate=SAMPLE_RATE) for p in files]
    one = np.concatenate([x for p in parts for x in (p, gap)])
    repeats = max(1, round(minutes * 60 * SAMPLE_RATE / len(one)))
    return np.tile(one, repeats).astype(np.float32)


def _rss_bytes() -> int:
    """Resident memory of this process now (0 where ``/proc`` is missing)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096
    except OSError:
        return 0


def peak_extra_rss(fn: Callable[[], T]) -> tuple[T, float, int]:
    """``fn()``, its seconds, and the most resident memory it added (sampled every 10 ms)."""
    base = _rss_bytes()
    peak = [base]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.01):
            peak[0] = max(peak[0], _rss_bytes())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    try:
        out = fn()
    finally:
        elapsed = time.perf_counter() - t0
        done.set()
        sampler.join()
    return out, elapsed, max(peak[0], _rss_bytes()) - base


def accuracy(diarizer: Diarizer, seeds: list[int], count: int) -> None:
    """Print frame accuracy and speaker-count hits of ``diarizer`` on built conversations."""
    for seed in seeds:
        mixtures = build(DATA, count=count, seed=seed)
        scores: list[float] = []
        right = 0
        for m in mixtures:
            found = diarizer.diarize(m.audio)
            scores.append(frame_accuracy(m.turns, found.turns))
            right += len(found.speakers) == m.speakers
        print(
            f"  seed {seed}: {len(mixtures)} built conversations, frame accuracy "
            f"{statistics.mean(scores):.3f} (lowest {min(scores):.3f}), "
            f"right speaker count {right}/{len(mixtures)}"
        )


def _shares(r: DerResult) -> str:
    total = max(r.total, 1e-9)
    return (
        f"DER {r.der:.3f} (missed {r.missed / total:.3f}, false alarm "
        f"{r.false_alarm / total:.3f}, confusion {r.confusion / total:.3f})"
    )


def conversations(diarizer: Diarizer) -> DerResult:
    """Print the DER of ``diarizer`` on each real conversation and pooled; return the pool."""
    from faster_whisper import decode_audio

    pooled = DerResult(0.0, 0.0, 0.0, 0.0)
    right = 0
    files = sorted(CONVERSATIONS.glob("*.rttm"))
    for rttm in files:
        reference = read_rttm(rttm)
        audio = decode_audio(str(rttm.with_suffix(".wav")), sampling_rate=SAMPLE_RATE)
        found = diarizer.diarize(audio)
        result = der(reference, found.turns)
        pooled = pooled + result
        wanted = len({t.speaker for t in reference})
        right += len(found.speakers) == wanted
        print(
            f"  {rttm.stem}: {_shares(result)}, {len(found.speakers)} speakers "
            f"(reference {wanted}), {result.total:.1f} s of reference speech"
        )
    print(
        f"  pooled over {len(files)}: {_shares(pooled)}, right speaker count {right}/{len(files)}"
    )
    return pooled


def main(argv: list[str] | None = None) -> None:
    """Time transcription and diarization of one multi-speaker recording; print the ratio,
    then each diarizer's accuracy on real and built conversations."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--model", default=None, help="Whisper model (default: the server's)")
    parser.add_argument("--diarizer", choices=["both", *DIARIZERS], default="both")
    parser.add_argument("--seeds", type=int, nargs="*", default=[7, 11, 23])
    parser.add_argument("--mixtures", type=int, default=24)
    args = parser.parse_args(argv)
    names = list(DIARIZERS) if args.diarizer == "both" else [args.diarizer]
    settings = Settings() if args.model is None else Settings(whisper_model=args.model)
    audio = recording(args.minutes)
    seconds = len(audio) / SAMPLE_RATE
    whisper = Providers(settings).transcriber()
    whisper.warm_up()
    diarizers = {name: DIARIZERS[name]() for name in names}
    loads: dict[str, tuple[float, int]] = {}
    for name, diarizer in diarizers.items():
        _, elapsed, rss = peak_extra_rss(partial(diarizer.diarize, audio[: 10 * SAMPLE_RATE]))
        loads[name] = (elapsed, rss)
    workdir = Path(tempfile.mkdtemp(prefix="ragcast-diarization-"))
    t_asr: list[float] = []
    t_dia: dict[str, list[float]] = {name: [] for name in names}
    extra = dict.fromkeys(names, 0)
    found = dict.fromkeys(names, Diarization(turns=[], duration_s=seconds))
    try:
        path = write_wav(audio, workdir / "speakers.wav")
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            whisper.transcribe(path, language=None)
            t_asr.append(time.perf_counter() - t0)
            for name, diarizer in diarizers.items():
                found[name], elapsed, rss = peak_extra_rss(partial(diarizer.diarize, audio))
                t_dia[name].append(elapsed)
                extra[name] = max(extra[name], rss)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    asr = statistics.median(t_asr)
    device = f"{getattr(whisper, 'device', '?')}, {getattr(whisper, 'compute_type', '?')}"
    print(f"recording: {seconds / 60:.1f} min ({seconds:.0f} s), all shared clips in order")
    print(
        f"transcription ({settings.whisper_model}, {device}): {asr:.1f} s, "
        f"{seconds / asr:.1f}x real time"
    )
    for name in names:
        dia = statistics.median(t_dia[name])
        load_s, load_rss = loads[name]
        print(
            f"diarization ({name}): models load and first call on 10 s {load_s:.1f} s, "
            f"+{load_rss / 2**20:.0f} MiB resident"
        )
        print(
            f"diarization ({name}): {dia:.1f} s, {seconds / dia:.1f}x real time, "
            f"{len(found[name].speakers)} speakers, {len(found[name].turns)} turns, "
            f"peak extra RSS {extra[name] / 2**20:.0f} MiB"
        )
        verdict = "ok" if dia / asr <= TARGET else "OVER"
        print(
            f"diarization ({name}) / transcription: {dia / asr * 100:.1f} % "
            f"(target <= {TARGET * 100:.0f} %) {verdict}"
        )
    for name, diarizer in diarizers.items():
        print(f"{name} on real conversations (DER, no collar, overlap scored):")
        conversations(diarizer)
        print(f"{name} on built conversations:")
        accuracy(diarizer, args.seeds, args.mixtures)


if __name__ == "__main__":
    main()
