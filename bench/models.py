"""The packaged Whisper models side by side: speed, accuracy and install size.

For each model, through ragcast's own transcriber as the server builds it (int8 on the CPU,
or CUDA when present; with ``base``, short English items go to the packaged ``tiny.en``):
x-real-time on the short English recordings (sequential decoder) and on one 5.8-minute
recording (batched), pooled WER on the English recordings of ``shared/data`` (short and
long), the error rate on each other language (CER for Chinese and Japanese) with the
language detected, and the size of the installed packages.

    .venv/bin/python -m bench models [--models tiny.en,base]
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import re
import shutil
import tempfile
import time
from pathlib import Path

import jiwer

from bench.pipeline import DATA, SAMPLE_RATE, english, long_recording
from ragcast.providers.registry import Providers
from ragcast.providers.transcribers.models import SPLIT_MODELS, WHOLE_MODELS
from ragcast.providers.transcribers.whisper import WhisperTranscriber
from ragcast.settings import Settings

FILLERS = {"um", "uh", "yknow", "er", "ah", "hmm", "mm"}
CHARACTER_LANGUAGES = {"zh", "ja", "ko"}


def normalise(text: str) -> str:
    """Lower case, no punctuation, no fillers, "Mr." spelt out (shared/data/README.md)."""
    text = re.sub(r"\bmr\.?\s", "mister ", text.lower())
    text = re.sub(r"[^\w\s']", " ", text).replace("'", "")
    return " ".join(w for w in text.split() if w not in FILLERS)


def error_rate(reference: str, hypothesis: str, language: str) -> float:
    """WER, or CER for languages written without spaces."""
    if language in CHARACTER_LANGUAGES:
        ref, hyp = (re.sub(r"[^\w]", "", t) for t in (reference, hypothesis))
        return float(jiwer.cer(ref, hyp or " "))
    return float(jiwer.wer(normalise(reference), normalise(hypothesis) or " "))


def install_size_mb(model: str) -> float:
    """Megabytes of the packages that ship ``model``."""
    modules = SPLIT_MODELS[model].packages if model in SPLIT_MODELS else (WHOLE_MODELS[model],)
    total = 0
    for module in modules:
        spec = importlib.util.find_spec(module)
        if spec is None or spec.origin is None:
            continue
        total += sum(p.stat().st_size for p in Path(spec.origin).parent.rglob("*") if p.is_file())
    return total / 1e6


def main(argv: list[str] | None = None) -> None:
    """Measure each model and print one table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default="tiny.en,base")
    args = parser.parse_args(argv)
    with (DATA / "manifest.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    refs = {r["file"]: r for r in rows}
    workdir = Path(tempfile.mkdtemp(prefix="ragcast-models-"))
    try:
        long_path = long_recording(workdir / "long.wav", english())
        long_ref = " ".join(refs[p.name]["reference_text"] for _ in range(5) for p in english())
        for model in args.models.split(","):
            t = Providers(Settings(whisper_model=model)).transcriber()
            assert isinstance(t, WhisperTranscriber)
            t.warm_up()
            short_audio = short_time = 0.0
            refs_en, hyps_en = [], []
            others = []
            for row in rows:
                path = DATA / row["file"]
                t0 = time.perf_counter()
                try:
                    out = t.transcribe(path)
                    text, language = out.text, out.language
                except Exception as exc:  # noqa: BLE001 - an English-only model refuses others
                    text, language = "", f"refused: {exc}"[:60]
                elapsed = time.perf_counter() - t0
                if row["language"] == "en":
                    short_audio += float(row["duration_s"])
                    short_time += elapsed
                    refs_en.append(normalise(row["reference_text"]))
                    hyps_en.append(normalise(text))
                else:
                    rate = error_rate(row["reference_text"], text, row["language"])
                    others.append(f"{row['language']}->{language} {rate:.2f}")
            t0 = time.perf_counter()
            long_out = t.transcribe(long_path)
            long_time = time.perf_counter() - t0
            long_seconds = (long_path.stat().st_size - 44) / 2 / SAMPLE_RATE
            size = install_size_mb(model)
            print(f"{model} ({t.device}, {t.compute_type}), {size:.0f} MB installed")
            print(
                f"  English clips: {short_audio / short_time:.1f}x real time, pooled WER "
                f"{jiwer.wer(refs_en, hyps_en):.3f}"
            )
            print(
                f"  5.8-min recording (batched): {long_seconds / long_time:.1f}x real time, "
                f"WER {jiwer.wer(normalise(long_ref), normalise(long_out.text)):.3f}"
            )
            print(f"  other languages (WER/CER): {', '.join(others)}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
