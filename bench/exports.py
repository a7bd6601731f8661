"""Benchmark: ragcast's export of a huge job against writing the same rows directly.

A job of ``--chunks`` chunks (default 1,000,000: 1,000 items of 1,000 chunks, texts of
about 400 characters, ``--dim`` 512 float32 dimensions as the default local embedding model
makes) is written straight into a SQLite store with SQLAlchemy Core ``insert``. For each
format, each side runs in a fresh process, so its resident memory starts clean:

- **ragcast**: ``run_export`` on a new ``Export`` row: the store query, the writer, progress
  updates, fsync and the rename into place (parquet row groups of 4,000 chunks);
- **bare**: a plain ``sqlite3`` cursor over the same join in the same order, fetching 1,000
  rows at a time, writing the same columns with ``json.dumps`` per record (json, vector),
  ``csv.writer`` (csv) or ``pyarrow.parquet.ParquetWriter`` with one row group per batch and
  the same dictionary columns (parquet), then ``fsync``.

The two files are compared (size and sampled byte ranges; for parquet the schema, the row
count and sampled runs of rows) before both are removed. Printed per format: seconds of each
side, their ratio, and the export's resident memory growth: the peak (``VmHWM``, reset
through ``/proc/self/clear_refs`` just before the export) over the resident size at that
moment. Targets: ratio <= 1.2, growth <= 100 MB.

    .venv/bin/python -m bench exports [--chunks 1000000] [--dim 512] [--formats json,csv]
        [--rounds 1] [--workdir DIR]

With ``--workdir`` the store is built there, kept, and reused by a later run of the same
shape. The text formats are bound by formatting 512 million floats per side: a full run took
about 45 minutes on two shared cores.
"""

from __future__ import annotations

import argparse
import csv
import gc
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FORMATS = ("json", "csv", "parquet", "vector")
CHUNKS_PER_ITEM = 1_000
JOB_ID = "bench-export"
#: the bare side's fetch size, also ragcast's writer batch
BATCH = 1_000
#: the job's local model, as its request names it
MODEL = "use-multilingual-v3"
MAX_RATIO = 1.2
MAX_GROWTH_MB = 100.0

WORDS = (
    "the harbour opens at dawn and fishing boats return heavy at noon while gulls circle "
    'over the pier, "quietly", as the café owner counts crates of mackerel; tides rise '
    "twice a day, naïve visitors wait for the ferry near lighthouse keepers who remember "
    "storms from decades ago — nets dry on the wall beside old rope and painted buoys"
).split()

QUERY = """
SELECT items.content_id, items.source_type, items.source_ref, items.title, items.url,
       items.channel, items.upload_date, items.duration_s, items.language,
       items.language_probability, items.speaker_map, chunks.item_id, chunks.chunk_index,
       chunks.text, chunks.start_s, chunks.end_s, chunks.token_count, chunks.embedding,
       chunks.speakers, chunks.speaker, chunks.confidence
FROM chunks JOIN items ON items.id = chunks.item_id
WHERE items.job_pk = ? AND items.status = 'completed'
ORDER BY items."index", chunks.chunk_index
"""


# ---------------------------------------------------------------------------------------
# The store


def _settings(data: Path) -> Any:
    from ragcast.settings import Settings

    return Settings(data_dir=data, preload_models=False)


def _item_row(job_pk: int, index: int) -> dict[str, Any]:
    document = index % 10 == 9
    diarized = index % 2 == 0 and not document
    content_id = f"yt-{index * 7919:09x}"
    return {
        "id": index + 1,
        "job_pk": job_pk,
        "index": index,
        "content_id": content_id,
        "source_type": "upload" if document else "youtube",
        "source_ref": f"notes-{index}.pdf" if document else f"https://youtu.be/{content_id}",
        "title": None if document else f"Episode {index}: Life at the harbour",
        "url": None if document else f"https://www.youtube.com/watch?v={content_id}",
        "channel": None if document else f"Harbour Radio {index % 7}",
        "upload_date": None if document else f"2024{index % 12 + 1:02d}{index % 28 + 1:02d}",
        "duration_s": CHUNKS_PER_ITEM * 14.25 + 15.5,
        "language": ("en", "de", "en", "fr")[index % 4],
        "language_probability": 0.5 + (index % 50) / 100,
        "status": "completed",
        "stage": "indexed",
        "chunk_count": CHUNKS_PER_ITEM,
        "speaker_map": {"SPEAKER_00": "Host", "SPEAKER_01": "Guest"} if diarized else None,
    }


def _chunk_rows(item: dict[str, Any], n: int, dim: int, rng: np.random.Generator) -> list[Any]:
    vectors = rng.standard_normal((n, dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    picks = rng.integers(0, len(WORDS), size=(n, 64))
    timed = item["source_type"] != "upload"
    diarized = item["speaker_map"] is not None
    rows = []
    for j in range(n):
        text = " ".join([WORDS[k] for k in picks[j]])
        speakers = (["SPEAKER_00"], ["SPEAKER_01", "SPEAKER_00"])[j % 2] if diarized else None
        rows.append(
            {
                "item_id": item["id"],
                "chunk_index": j,
                "text": text[0].upper() + text[1:],
                "start_s": j * 14.25 if timed else None,
                "end_s": j * 14.25 + 15.5 if timed else None,
                "token_count": 80 + j % 40,
                "embedding": vectors[j].tobytes(),
                "speakers": speakers,
                "speaker": speakers[0] if speakers else None,
            }
        )
    return rows


def build_store(data: Path, chunks: int, dim: int) -> None:
    """A store under ``data`` holding one completed job of ``chunks`` chunks."""
    from sqlalchemy import insert

    from ragcast.runner.boot import build_context
    from ragcast.store.models import Chunk, Item, Job, User

    ctx = build_context(_settings(data))
    items = -(-chunks // CHUNKS_PER_ITEM)
    rng = np.random.default_rng(42)
    with ctx.db.engine.begin() as conn:
        conn.execute(insert(User), [{"id": 1, "name": "bench"}])
        job = {
            "id": 1,
            "job_id": JOB_ID,
            "user_id": 1,
            "request_hash": "0" * 64,
            "request": {"embedding_model": {"id": "local", "model": MODEL}},
            "platform": "youtube",
            "input_method": "url",
            "embedding_model": "local",
            "dimensions": dim,
            "vector_db": "chroma",
            "collection": "bench",
            "status": "completed",
            "total_content": items,
            "completed_items": items,
            "embeddings": chunks,
        }
        conn.execute(insert(Job), [job])
    for index in range(items):
        item = _item_row(1, index)
        n = min(CHUNKS_PER_ITEM, chunks - index * CHUNKS_PER_ITEM)
        with ctx.db.engine.begin() as conn:
            conn.execute(insert(Item), [item])
            conn.execute(insert(Chunk), _chunk_rows(item, n, dim, rng))
    ctx.db.dispose()


# ---------------------------------------------------------------------------------------
# Measuring one side (run in a child process)


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def measure(run: Callable[[], object]) -> dict[str, Any]:
    """Seconds ``run`` takes and the resident memory it adds at its peak, in MB."""
    gc.collect()
    try:  # resets VmHWM to the current resident size (Linux 4.0+)
        Path("/proc/self/clear_refs").write_text("5")
        reset = True
    except OSError:
        reset = False
    before = _status_kb("VmRSS")
    t0 = time.perf_counter()
    run()
    seconds = time.perf_counter() - t0
    growth = (_status_kb("VmHWM") - before) / 1024
    return {"seconds": seconds, "growth_mb": growth, "peak_reset": reset}


def ragcast_side(data: Path, fmt: str) -> dict[str, Any]:
    """Export the job through ``run_export``: its measurement and the written file."""
    from ragcast.exports.job import run_export
    from ragcast.runner.boot import build_context
    from ragcast.store.models import Export

    ctx = build_context(_settings(data), migrate=False)
    with ctx.db.session() as s:
        exp = Export(export_id=f"bench-{fmt}-{time.time_ns()}", user_id=1, job_pk=1, format=fmt)
        s.add(exp)
        s.flush()
        pk = exp.id
    result = measure(lambda: run_export(ctx, pk))
    with ctx.db.session() as s:
        done = s.get(Export, pk)
        assert done is not None and done.status == "completed", done and done.error
        assert done.path is not None
        result["path"] = done.path
    return result


class _Speakers:
    """What a chunk's speaker labels are called, with each item's map parsed once."""

    def __init__(self) -> None:
        self.item_id: int | None = None
        self.names: dict[str, str] = {}

    def named(
        self, item_id: int, speaker_map: str | None, speakers: str | None
    ) -> list[str] | None:
        """The names of ``speakers`` (a JSON list, or null)."""
        if item_id != self.item_id:
            self.item_id = item_id
            self.names = (json.loads(speaker_map) if speaker_map else None) or {}
        labels = json.loads(speakers) if speakers else None
        if not labels:
            return None
        return [self.names.get(label) or label for label in labels]


def bare_batches(data: Path, model: str, dim: int) -> Iterator[dict[str, list[Any]]]:
    """The job's chunks, ``BATCH`` at a time, as the export's columns (embeddings as blobs)."""
    import sqlite3

    from ragcast.retrieval.links import deep_link  # the same links, made the same way

    conn = sqlite3.connect(data / "ragcast.db")
    cur = conn.cursor()
    cur.arraysize = BATCH
    cur.execute(QUERY, (1,))
    speakers = _Speakers()
    while rows := cur.fetchmany():
        (
            cid, stype, ref, title, url, chan, date, dur, lang, prob, smap,
            item, idx, text, s, e, tok, emb, sp, spk, conf,
        ) = zip(*rows, strict=True)  # fmt: skip
        n = len(rows)
        yield {
            "id": [f"{c}:{i}" for c, i in zip(cid, idx, strict=True)],
            "job_id": [JOB_ID] * n,
            "content_id": list(cid),
            "chunk_index": list(idx),
            "text": list(text),
            "start_s": list(s),
            "end_s": list(e),
            "token_count": list(tok),
            "source_type": list(stype),
            "source": [t or r for t, r in zip(title, ref, strict=True)],
            "title": list(title),
            "url": list(url),
            "deep_link": [deep_link("youtube", u, a) for u, a in zip(url, s, strict=True)],
            "platform": ["youtube"] * n,
            "channel": list(chan),
            "upload_date": list(date),
            "duration_s": list(dur),
            "language": list(lang),
            "language_probability": list(prob),
            "speaker": list(spk),
            "speakers": [speakers.named(*x) for x in zip(item, smap, sp, strict=True)],
            "confidence": list(conf),
            "embedding_model": [model] * n,
            "dimensions": [dim] * n,
            "embedding": list(emb),
        }
    conn.close()


def _dicts(columns: dict[str, list[Any]]) -> Iterator[dict[str, Any]]:
    """Each row of a batch as a dict, its embedding as a list of floats."""
    names = list(columns)
    for values in zip(*columns.values(), strict=True):
        row = dict(zip(names, values, strict=True))
        row["embedding"] = np.frombuffer(row["embedding"], dtype=np.float32).tolist()
        yield row


def _bare_json(batches: Iterator[dict[str, list[Any]]], out: IO[str]) -> None:
    out.write('{"format": "ragcast-export", "version": 2, "chunks": [')
    n = 0
    for batch in batches:
        for row in _dicts(batch):
            out.write(",\n" if n else "\n")
            out.write(json.dumps(row, ensure_ascii=False))
            n += 1
    out.write(f'\n], "count": {n}}}\n')


def _bare_csv(batches: Iterator[dict[str, list[Any]]], out: IO[str]) -> None:
    writer = csv.writer(out)
    header = False
    for batch in batches:
        if not header:
            writer.writerow(list(batch))
            header = True
        batch["embedding"] = [
            json.dumps(np.frombuffer(blob, dtype=np.float32).tolist())
            for blob in batch["embedding"]
        ]
        batch["speakers"] = [None if v is None else "; ".join(v) for v in batch["speakers"]]
        writer.writerows(zip(*batch.values(), strict=True))


def _bare_vector(batches: Iterator[dict[str, list[Any]]], out: IO[str]) -> None:
    for batch in batches:
        for row in _dicts(batch):
            vector, chunk_id = row.pop("embedding"), row.pop("id")
            metadata = {k: v for k, v in row.items() if v is not None}
            line = {"id": chunk_id, "values": vector, "metadata": metadata}
            out.write(json.dumps(line, ensure_ascii=False))
            out.write("\n")


def _bare_parquet(batches: Iterator[dict[str, list[Any]]], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ragcast.exports import SCHEMA

    dictionary = [
        f"{name}.list.element" if name == "speakers" else name
        for name in SCHEMA.names
        if name != "embedding"
    ]
    with pq.ParquetWriter(path, SCHEMA, use_dictionary=dictionary) as writer:
        for batch in batches:
            blobs = batch["embedding"]
            flat = np.frombuffer(b"".join(blobs), dtype=np.float32)
            offsets = np.cumsum([0] + [len(v) // 4 for v in blobs], dtype=np.int32)
            columns = [
                pa.array(batch[f.name], type=f.type) for f in SCHEMA if f.name != "embedding"
            ]
            columns.append(pa.ListArray.from_arrays(offsets, flat))
            table = pa.RecordBatch.from_arrays(columns, schema=SCHEMA)
            writer.write_batch(table, row_group_size=len(blobs))


def bare_side(data: Path, fmt: str, dim: int) -> dict[str, Any]:
    """Export the job with a plain cursor and the format's library: measurement and file."""
    import pyarrow  # noqa: F401  (loaded before the clock, as ragcast's side has it)

    from ragcast.exports import EXTENSIONS

    path = data / f"bare.{EXTENSIONS[fmt]}"

    def run() -> None:
        batches = bare_batches(data, MODEL, dim)
        if fmt == "parquet":
            _bare_parquet(batches, path)
        else:
            writers = {"json": _bare_json, "csv": _bare_csv, "vector": _bare_vector}
            with path.open("w", encoding="utf-8", newline="") as out:
                writers[fmt](batches, out)
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    return {**measure(run), "path": str(path)}


def child(argv: list[str]) -> None:
    """Run one side in this process and print its measurement as JSON."""
    side, fmt, data, dim = argv[0], argv[1], Path(argv[2]), int(argv[3])
    out = ragcast_side(data, fmt) if side == "ragcast" else bare_side(data, fmt, dim)
    print(json.dumps(out))


# ---------------------------------------------------------------------------------------
# Comparing the two files


def _same_text_files(a: Path, b: Path, samples: int = 64, window: int = 1 << 16) -> None:
    size = a.stat().st_size
    assert size == b.stat().st_size, f"{a.name}: {size} bytes, bare {b.stat().st_size}"
    rng = random.Random(size)
    offsets = [0, max(0, size - window)] + [rng.randrange(max(size, 1)) for _ in range(samples)]
    with a.open("rb") as fa, b.open("rb") as fb:
        for offset in offsets:
            fa.seek(offset)
            fb.seek(offset)
            assert fa.read(window) == fb.read(window), f"{a.name} differs near byte {offset}"


def _rows(pf: Any, first: int, n: int) -> Any:
    """Rows ``first`` to ``first + n`` of a parquet file, reading only the groups they are in."""
    groups, start = [], 0
    lead = 0
    for k in range(pf.metadata.num_row_groups):
        rows = pf.metadata.row_group(k).num_rows
        if start < first + n and start + rows > first:
            if not groups:
                lead = first - start
            groups.append(k)
        start += rows
    return pf.read_row_groups(groups).slice(lead, n)


def _same_parquet(a: Path, b: Path, samples: int = 8, n: int = 2_000) -> None:
    import pyarrow.parquet as pq

    fa, fb = pq.ParquetFile(a), pq.ParquetFile(b)
    assert fa.schema_arrow == fb.schema_arrow, "parquet schemas differ"
    rows = fa.metadata.num_rows
    assert rows == fb.metadata.num_rows, "parquet row counts differ"
    rng = random.Random(rows)
    for first in {0, max(0, rows - n), *(rng.randrange(max(rows, 1)) for _ in range(samples))}:
        assert _rows(fa, first, n).equals(_rows(fb, first, n)), f"rows from {first} differ"


def compare(fmt: str, ours: Path, bare: Path) -> None:
    """Fail unless the two exports hold the same content."""
    if fmt == "parquet":
        _same_parquet(ours, bare)
    else:
        _same_text_files(ours, bare)


# ---------------------------------------------------------------------------------------


def _run_side(side: str, fmt: str, data: Path, dim: int) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.exports", "--child", side, fmt, str(data), str(dim)]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{side} {fmt} failed:\n{out.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _prepare(workdir: Path, chunks: int, dim: int) -> Path:
    data = workdir / "data"
    marker = workdir / "shape.json"
    shape = {"chunks": chunks, "dim": dim, "per_item": CHUNKS_PER_ITEM, "items": 2}
    if marker.exists() and json.loads(marker.read_text()) == shape:
        return data
    shutil.rmtree(data, ignore_errors=True)
    marker.unlink(missing_ok=True)
    t0 = time.perf_counter()
    build_store(data, chunks, dim)
    marker.write_text(json.dumps(shape))
    size = (data / "ragcast.db").stat().st_size / 1e9
    print(
        f"store: {chunks:,} chunks x {dim} dims, {size:.1f} GB, built in "
        f"{time.perf_counter() - t0:.0f} s",
        flush=True,
    )
    return data


def bench_format(fmt: str, data: Path, dim: int, rounds: int) -> dict[str, Any]:
    """Both sides of ``fmt``, alternating, ``rounds`` times; medians and worst growth."""
    times: dict[str, list[float]] = {"ragcast": [], "bare": []}
    growth: dict[str, float] = {"ragcast": 0.0, "bare": 0.0}
    size = 0
    for r in range(rounds):
        order = ("ragcast", "bare") if r % 2 == 0 else ("bare", "ragcast")
        paths = {}
        for side in order:
            result = _run_side(side, fmt, data, dim)
            times[side].append(result["seconds"])
            growth[side] = max(growth[side], result["growth_mb"])
            paths[side] = Path(result["path"])
        compare(fmt, paths["ragcast"], paths["bare"])
        size = paths["ragcast"].stat().st_size
        for path in paths.values():
            path.unlink()
    ours, bare = statistics.median(times["ragcast"]), statistics.median(times["bare"])
    return {
        "format": fmt,
        "ragcast": ours,
        "bare": bare,
        "ratio": ours / bare,
        "growth": growth["ragcast"],
        "bare_growth": growth["bare"],
        "size_gb": size / 1e9,
    }


def report(row: dict[str, Any]) -> str:
    """One line of the table."""
    ok = row["ratio"] <= MAX_RATIO and row["growth"] <= MAX_GROWTH_MB
    return (
        f"{row['format']:<8} {row['ragcast']:>10.1f} {row['bare']:>10.1f} {row['ratio']:>7.2f}"
        f" {row['growth']:>12.1f} {row['bare_growth']:>10.1f} {row['size_gb']:>8.2f}"
        f"  {'PASS' if ok else 'FAIL'}"
    )


def main(argv: list[str] | None = None) -> None:
    """Run the bench and print one line per format."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        child(argv[1:])
        return
    parser = argparse.ArgumentParser(prog="python -m bench exports")
    parser.add_argument("--chunks", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--formats", default=",".join(FORMATS))
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    formats = [f for f in args.formats.split(",") if f]
    unknown = set(formats) - set(FORMATS)
    if unknown:
        parser.error(f"unknown formats: {', '.join(sorted(unknown))}")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ragcast-bench-exports-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        data = _prepare(workdir, args.chunks, args.dim)
        print(
            f"{'format':<8} {'ragcast s':>10} {'bare s':>10} {'ratio':>7} {'RSS +MB':>12}"
            f" {'bare +MB':>10} {'file GB':>8}  (targets: ratio <= {MAX_RATIO},"
            f" RSS growth <= {MAX_GROWTH_MB:.0f} MB)",
            flush=True,
        )
        for fmt in formats:
            print(report(bench_format(fmt, data, args.dim, args.rounds)), flush=True)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
