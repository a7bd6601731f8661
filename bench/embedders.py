"""Benchmark: ragcast's local embedder against a bare sentence-transformers ``encode``.

Both sides load the same model (the packaged all-MiniLM-L6-v2 unless ``--model``), embed
the same chunks (synthetic transcript text of about 200 tokens each, built from the
shared reference transcripts) with the same batch size and normalisation, in alternating
rounds of the same run after one warm-up each. Prints chunks per second of each side
(best round and median, wall-clock, and per CPU-second, which other load on a shared
machine barely moves) and the ratio ragcast/bare (target: >= 0.95). Late chunking's
throughput is printed too, for information.

    .venv/bin/python -m bench embedders [--chunks 2000] [--rounds 3] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import csv
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from ragcast.providers.embedders.local import LocalEmbedder
from ragcast.settings import local_model_path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
FALLBACK = (
    "the tide came in over the sand and the keeper wrote the weather in his log "
    "before he climbed the stairs to light the lamp for the ships passing the reef"
)


def make_chunks(count: int, tokens: int = 200, seed: int = 7) -> list[str]:
    """``count`` chunks of about ``tokens`` MiniLM tokens of sentence-like text."""
    words = FALLBACK.split()
    manifest = DATA / "manifest.csv"
    if manifest.is_file():
        with manifest.open(newline="") as f:
            words += [w for row in csv.DictReader(f) for w in row["reference_text"].split()]
    rng = random.Random(seed)
    per_chunk = int(tokens / 1.3)  # WordPiece gives about 1.3 tokens a word in English
    return [" ".join(rng.choice(words) for _ in range(per_chunk)) for _ in range(count)]


def timed(run: Callable[[], object]) -> tuple[float, float]:
    """Wall-clock and CPU seconds (all threads of the process) one call of ``run`` takes."""
    w0, c0 = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - w0, time.process_time() - c0


def main(argv: list[str] | None = None) -> None:
    """Run the rounds and print chunks per second and the ratio."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--chunks", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--model", default=None, help="model name or path (default: packaged MiniLM)"
    )
    args = parser.parse_args(argv)

    from sentence_transformers import SentenceTransformer

    path = args.model or local_model_path("all-MiniLM-L6-v2")
    chunks = make_chunks(args.chunks)
    ours = LocalEmbedder(path, batch_size=args.batch_size)
    bare = SentenceTransformer(path, device="cpu")

    def run_bare() -> object:
        return bare.encode(
            chunks,
            batch_size=args.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )

    def run_ours() -> object:
        return ours.embed_batch(chunks)

    warm = chunks[: args.batch_size * 2]
    bare.encode(
        warm, batch_size=args.batch_size, normalize_embeddings=True, show_progress_bar=False
    )
    ours.embed_batch(warm)
    bare_s: list[tuple[float, float]] = []
    ours_s: list[tuple[float, float]] = []
    n_chunks = len(chunks)
    for n in range(args.rounds):
        # Alternate which side goes first, so drift in the machine's load hits both alike.
        if n % 2 == 0:
            bare_s.append(timed(run_bare))
            ours_s.append(timed(run_ours))
        else:
            ours_s.append(timed(run_ours))
            bare_s.append(timed(run_bare))
        print(
            f"round {n + 1}: bare {n_chunks / bare_s[-1][0]:.1f} chunks/s "
            f"({n_chunks / bare_s[-1][1]:.1f} per CPU-s)  "
            f"ragcast {n_chunks / ours_s[-1][0]:.1f} chunks/s "
            f"({n_chunks / ours_s[-1][1]:.1f} per CPU-s)",
            flush=True,
        )
    print(f"{n_chunks} chunks of ~200 tokens, batch size {args.batch_size}, model {path}")
    # Other load on a shared machine only ever slows a round down: the best round of each
    # side is the steadiest wall-clock figure, and CPU time is barely touched by it.
    for label, k, pick in (
        ("wall-clock, best round", 0, min),
        ("wall-clock, median", 0, statistics.median),
        ("CPU time, median", 1, statistics.median),
    ):
        b = n_chunks / pick([t[k] for t in bare_s])
        r = n_chunks / pick([t[k] for t in ours_s])
        print(f"{label}: bare encode {b:.1f}, ragcast embed_batch {r:.1f}, ratio {r / b:.3f}")
    wall = statistics.median(t[0] for t in bare_s) / statistics.median(t[0] for t in ours_s)
    cpu = statistics.median(t[1] for t in bare_s) / statistics.median(t[1] for t in ours_s)
    print(
        f"ratio ragcast/bare: {wall:.3f} wall-clock, {cpu:.3f} per CPU-second "
        "(target >= 0.95; on a shared machine trust the CPU-time figure)"
    )
    # Late chunking: documents of 20 chunks each, embedded in context (information only).
    docs = [chunks[i : i + 20] for i in range(0, len(chunks), 20)]
    late_s, _ = timed(lambda: [ours.embed_in_context(d) for d in docs])
    rate = n_chunks / late_s
    print(f"ragcast late chunking (embed_in_context, 20-chunk documents): {rate:.1f} chunks/s")


if __name__ == "__main__":
    main()
