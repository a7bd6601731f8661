"""Benchmark on a CUDA machine: x-real-time of ragcast against bare batched faster-whisper.

Both sides use the same Whisper model on the GPU (float16): the bare side is faster-whisper's
``BatchedInferencePipeline`` (batch 16), the ragcast side a real server process, upload to
``completed`` (transcription on the GPU, embedding and indexing included). The audio is the
English recordings of ``shared/data`` concatenated into one long recording, a few times
over; the whole run takes a few minutes. Without CUDA it says so and exits 0.

    .venv/bin/python -m bench gpu [--model base] [--rounds 3] [--repeats 20]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from bench.pipeline import Ragcast, english, long_recording
from ragcast.providers.transcribers.models import resolve_model
from ragcast.providers.transcribers.whisper import cuda_available


def main(argv: list[str] | None = None) -> None:
    """Print x-real-time for both sides, or that there is no CUDA device."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="base")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=20, help="copies of the clips")
    args = parser.parse_args(argv)
    if not cuda_available():
        print("gpu: no CUDA device visible to CTranslate2 here; nothing to measure")
        return
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    workdir = Path(tempfile.mkdtemp(prefix="ragcast-gpu-"))
    try:
        audio_path = long_recording(workdir / "long.wav", english(), repeats=args.repeats)
        seconds = _seconds(audio_path)
        model = WhisperModel(resolve_model(args.model), device="cuda", compute_type="float16")
        bare = BatchedInferencePipeline(model)

        def run_bare() -> float:
            t0 = time.perf_counter()
            segments, _ = bare.transcribe(
                str(audio_path), beam_size=5, batch_size=16, word_timestamps=True
            )
            list(segments)
            return time.perf_counter() - t0

        server = Ragcast(workdir, args.model)
        try:
            run_bare()
            server.run([audio_path])
            bare_t, rc_t = [], []
            for n in range(args.rounds):
                bare_t.append(run_bare())
                rc_t.append(server.run([audio_path]))
                print(f"round {n + 1}: bare {bare_t[-1]:.2f}s  ragcast {rc_t[-1]:.2f}s")
        finally:
            server.close()
        b, r = statistics.median(bare_t), statistics.median(rc_t)
        print(f"{seconds / 60:.1f} min of audio, model {args.model}, CUDA float16")
        print(f"bare BatchedInferencePipeline: {seconds / b:.1f}x real time")
        print(f"ragcast upload->completed:     {seconds / r:.1f}x real time")
        print(f"ratio ragcast/bare time: {r / b:.3f}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _seconds(path: Path) -> float:
    import wave

    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


if __name__ == "__main__":
    main()
