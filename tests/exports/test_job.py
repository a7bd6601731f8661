"""Exports of a real store: every chunk once, in item and chunk order, across read batches."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from sqlalchemy import insert, select

import ragcast
from ragcast.context import Context
from ragcast.exports import EXTENSIONS, FIELD_NAMES, FORMATS, ExportRecord, write_export
from ragcast.exports.job import iter_records, run_export
from ragcast.exports.meta import (
    JOB_NAME_LIMIT,
    embedding_model_name,
    empty_job_warning,
    export_filename,
    safe_job_name,
    stored_filename,
)
from ragcast.exports.writers import csv_safe
from ragcast.retrieval.links import deep_link
from ragcast.retrieval.records import display_names
from ragcast.runner.boot import build_context
from ragcast.store.models import Chunk, Export, Item, Job, User
from tests.conftest import fresh_postgres, make_settings
from tests.exports.test_writers import READERS, assert_rows_equal

DIM = 8
#: chunks per item, in index order: an empty item, single chunks, long runs
CHUNK_COUNTS = [0, 1, 640, 1, 7, 1200, 3, 0, 333, 2]
TEXTS = [
    "The harbour opens at dawn.",
    'Boats return, "heavy", at noon; gulls circle.',
    '=HYPERLINK("http://evil.example")',
    "-2+3 is what a spreadsheet would compute",
    "line one\nline two \u2028 \u2029 \x85 ünïcödé 🎙️",
    "",
]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.service)])
def ctx(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Context]:
    """A migrated store: SQLite under the data dir, or a new PostgreSQL database."""
    if request.param == "sqlite":
        context = build_context(make_settings(tmp_path))
        yield context
        context.db.dispose()
        return
    with fresh_postgres() as url:
        context = build_context(make_settings(tmp_path, database_url=url))
        yield context
        context.db.dispose()


def _item(job_pk: int, item_id: int, index: int, status: str = "completed") -> dict[str, Any]:
    diarized = index % 3 == 0
    return {
        "id": item_id,
        "job_pk": job_pk,
        "index": index,
        "content_id": f"yt-{index:04d}",
        "source_type": "upload" if index % 4 == 1 else "youtube",
        "source_ref": f"https://youtu.be/v{index}",
        "title": None if index % 4 == 1 else f'Episode {index}, "live"',
        "url": None if index % 4 == 1 else f"https://youtu.be/v{index}",
        "channel": None if index % 4 == 1 else f"=Harbour {index % 2}",
        "upload_date": None if index % 4 == 1 else f"2024010{index % 9 + 1}",
        "duration_s": None if index % 5 == 4 else 60.0 + index * 7.5,
        "language": (None, "en", "de")[index % 3],
        "language_probability": (None, 0.97, None)[index % 3],
        "status": status,
        "speaker_map": {"SPEAKER_00": "Host", "SPEAKER_01": "=Guest"} if diarized else None,
    }


def _chunks(item_id: int, n: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    rows = []
    for j in range(n):
        labels = (None, ["SPEAKER_00"], ["SPEAKER_01", "SPEAKER_00"], ["SPEAKER_02"])[j % 4]
        timed = j % 5 != 4
        rows.append(
            {
                "item_id": item_id,
                "chunk_index": j,
                "text": f"{TEXTS[j % len(TEXTS)]} #{item_id}.{j}",
                "start_s": j * 1.25 if timed else None,
                "end_s": j * 1.25 + 0.1 if timed else None,
                "token_count": 10 + j % 50,
                # one chunk without a stored embedding exports an empty one
                "embedding": None if j == 5 else rng.standard_normal(DIM, np.float32).tobytes(),
                "speakers": labels,
                "speaker": labels[0] if labels else None,
            }
        )
    return rows


def make_job(ctx: Context) -> int:
    """A completed job whose items and chunks were stored out of order; its key."""
    rng = np.random.default_rng(5)
    shuffle = random.Random(5)
    with ctx.db.engine.begin() as conn:
        conn.execute(insert(User), [{"id": 1, "name": "alice"}])
        job = {
            "id": 1,
            "job_id": "big-job",
            "user_id": 1,
            "request_hash": "0" * 64,
            "request": {"embedding_model": {"id": "local", "model": "use-multilingual-v3"}},
            "platform": "youtube",
            "input_method": "url",
            "embedding_model": "local",
            "dimensions": DIM,
            "vector_db": "chroma",
            "collection": "c",
            "status": "completed",
        }
        conn.execute(insert(Job), [job])
        # Item ids run against their index, so id order is not export order.
        items = [_item(1, 100 - index, index) for index in range(len(CHUNK_COUNTS))]
        items.append(_item(1, 50, len(CHUNK_COUNTS), status="failed"))  # never exported
        conn.execute(insert(Item), items)
        chunks = [
            row
            for item, n in zip(items, [*CHUNK_COUNTS, 9], strict=True)
            for row in _chunks(item["id"], n, rng)
        ]
        shuffle.shuffle(chunks)  # chunk ids in no particular order either
        conn.execute(insert(Chunk), chunks)
    return 1


def expected_records(ctx: Context, job_pk: int) -> list[ExportRecord]:
    """The job's chunks as exports carry them, read one ORM row at a time."""
    with ctx.db.sessions() as s:
        job = s.get(Job, job_pk)
        assert job is not None
        rows = s.execute(
            select(Chunk, Item)
            .join(Item, Item.id == Chunk.item_id)
            .where(Item.job_pk == job.id, Item.status == "completed")
            .order_by(Item.index, Chunk.chunk_index)
        )
        return [
            ExportRecord(
                id=f"{item.content_id}:{chunk.chunk_index}",
                job_id=job.job_id,
                content_id=item.content_id,
                chunk_index=chunk.chunk_index,
                text=chunk.text,
                start_s=chunk.start_s,
                end_s=chunk.end_s,
                token_count=chunk.token_count,
                source_type=item.source_type,
                source=item.title or item.source_ref,
                title=item.title,
                url=item.url,
                deep_link=deep_link(job.platform, item.url, chunk.start_s),
                platform=job.platform,
                channel=item.channel,
                upload_date=item.upload_date,
                duration_s=item.duration_s,
                language=item.language,
                language_probability=item.language_probability,
                speaker=chunk.speaker,
                speakers=display_names(chunk.speakers, item.speaker_map) or None,
                confidence=chunk.confidence,
                embedding_model="use-multilingual-v3",
                dimensions=job.dimensions,
                embedding=np.frombuffer(chunk.embedding or b"", dtype=np.float32),
            )
            for chunk, item in rows
        ]


def _csv_cells(record: ExportRecord) -> ExportRecord:
    """``record`` with every field as its csv cell reads back."""
    cells = {name: csv_safe(getattr(record, name)) for name in FIELD_NAMES if name != "embedding"}
    if record.speakers is not None:  # joined in one guarded cell, split again by the reader
        cells["speakers"] = cells["speakers"].split("; ")
    return dataclasses.replace(record, **cells)


def export(ctx: Context, job_pk: int, fmt: str, batch_size: int, row_group_size: int) -> Path:
    """Run one export of ``fmt`` through ``run_export``; the completed file."""
    with ctx.db.session() as s:
        exp = Export(export_id=f"e-{fmt}-{batch_size}", user_id=1, job_pk=job_pk, format=fmt)
        s.add(exp)
        s.flush()
        pk = exp.id
    run_export(ctx, pk, batch_size=batch_size, row_group_size=row_group_size)
    with ctx.db.sessions() as s:
        done = s.get(Export, pk)
        assert done is not None and done.status == "completed", done and done.error
        assert done.progress == 100.0 and done.path is not None
        assert done.file_size == Path(done.path).stat().st_size
        return Path(done.path)


@pytest.mark.parametrize(
    ("batch_size", "row_group_size"), [(7, 100), (64, 64), (1000, 300), (5000, 4096)]
)
def test_batched_export_writes_every_chunk_once_in_order(
    ctx: Context, tmp_path: Path, batch_size: int, row_group_size: int
) -> None:
    """Each format holds exactly the records one ORM row at a time gives, byte for byte."""
    job_pk = make_job(ctx)
    records = expected_records(ctx, job_pk)
    assert len(records) == sum(CHUNK_COUNTS)
    assert sum(len(r.embedding) == 0 for r in records) == 4  # chunk 5 of each long item
    reference = tmp_path / "reference"
    reference.mkdir()
    for fmt in FORMATS:
        path = export(ctx, job_pk, fmt, batch_size, row_group_size)
        rows = READERS[fmt](path)
        assert [row["id"] for row in rows] == [r.id for r in records]
        # csv cells that would run as formulas read back with their guarding quote
        assert_rows_equal(rows, [_csv_cells(r) for r in records] if fmt == "csv" else records)
        # The same records written one by one make the same file.
        expected = reference / path.name
        write_export(fmt, records, expected, total=len(records), batch_size=batch_size)
        if fmt == "parquet":
            assert pq.read_table(path).equals(pq.read_table(expected))
            meta = pq.ParquetFile(path).metadata
            sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
            full, last = divmod(len(records), row_group_size)
            assert sizes == [row_group_size] * full + ([last] if last else [])
        else:
            assert path.read_bytes() == expected.read_bytes()
        if fmt == "csv":
            assert "'=HYPERLINK" in path.read_text(encoding="utf-8")


def test_iter_records_reads_the_job_in_order(ctx: Context) -> None:
    """``iter_records`` gives the same records as one ORM row at a time, across batches."""
    job_pk = make_job(ctx)
    records = expected_records(ctx, job_pk)
    with ctx.db.sessions() as s:
        job = s.get(Job, job_pk)
        assert job is not None
        got = list(iter_records(ctx, job, batch=13))
    assert [r.id for r in got] == [r.id for r in records]
    for a, b in zip(got, records, strict=True):
        assert a.metadata() == b.metadata()
        assert np.array_equal(np.asarray(a.embedding), np.asarray(b.embedding))


def test_a_stored_nan_fails_the_export(ctx: Context) -> None:
    """A NaN in a stored embedding fails a JSON export instead of writing invalid JSON."""
    job_pk = make_job(ctx)
    with ctx.db.engine.begin() as conn:
        bad = np.full(DIM, np.nan, dtype=np.float32).tobytes()
        conn.execute(Chunk.__table__.update().where(Chunk.chunk_index == 3).values(embedding=bad))
    with ctx.db.session() as s:
        exp = Export(export_id="e-nan", user_id=1, job_pk=job_pk, format="json")
        s.add(exp)
        s.flush()
        pk = exp.id
    run_export(ctx, pk, batch_size=100)
    with ctx.db.sessions() as s:
        done = s.get(Export, pk)
        assert done is not None and done.status == "failed"
        assert done.error is not None and "JSON compliant" in done.error
    assert list((ctx.settings.data_dir / "exports").iterdir()) == []


def test_files_carry_the_job_id_and_parquet_its_model(ctx: Context) -> None:
    """The stored file is named by job, day and export; parquet says how it was embedded."""
    job_pk = make_job(ctx)
    paths = [export(ctx, job_pk, fmt, 1000, 4000) for fmt in FORMATS]
    with ctx.db.sessions() as s:
        done = {e.format: e for e in s.scalars(select(Export))}
    for fmt, path in zip(FORMATS, paths, strict=True):
        exp = done[fmt]
        day = f"{exp.created_at:%Y%m%d}"
        assert path.name == f"big-job-{day}-{exp.id}.{EXTENSIONS[fmt]}"
        assert exp.filename == f"bulk-embeddings-{day}.{EXTENSIONS[fmt]}"  # the contract's
    meta = {k.decode(): v.decode() for k, v in pq.read_schema(paths[2]).metadata.items()}
    created = meta.pop("created_at")
    assert meta == {
        "embedding_model": "use-multilingual-v3",
        "dimensions": str(DIM),
        "job_id": "big-job",
        "ragcast_version": ragcast.__version__,
    }
    assert datetime.fromisoformat(created).tzinfo is not None


def test_a_job_id_is_made_safe_for_a_file_name() -> None:
    when = datetime(2025, 1, 5, tzinfo=UTC)
    assert stored_filename("talk:2024.v1", "vector", when, 7) == "talk_2024.v1-20250105-7.jsonl"
    assert safe_job_name("../../etc/passwd") == "_.._etc_passwd"
    assert safe_job_name("...") == "job" and len(safe_job_name("a" * 300)) == JOB_NAME_LIMIT
    assert export_filename("parquet", when) == "bulk-embeddings-20250105.parquet"


def test_the_model_is_named_as_the_job_recorded_it(ctx: Context) -> None:
    """The local model from the request, else the tokenizer the job recorded; a backend
    that is not installed keeps its id."""
    job = Job(job_id="j", embedding_model="local", dimensions=512, request={})
    job.request = {"embedding_model": {"id": "local", "model": "multilingual-e5-small"}}
    assert embedding_model_name(ctx, job) == "multilingual-e5-small"
    job.request = {"embedding_model": {"id": "local", "model": "/srv/models/acme/minilm"}}
    assert embedding_model_name(ctx, job) == "acme/minilm"  # no server path in the file
    job.request, job.tokenizer = {}, "use-multilingual-v3"
    assert embedding_model_name(ctx, job) == "use-multilingual-v3"
    job.embedding_model, job.request = "no-such-backend", {"embedding_model": {}}
    assert embedding_model_name(ctx, job) == "no-such-backend"


def test_an_empty_job_is_explained(ctx: Context) -> None:
    """A job without chunks exports a valid empty file; the warning says why."""
    job_pk = make_job(ctx)
    with ctx.db.session() as s:
        assert empty_job_warning(s, job_pk) is None
    with ctx.db.engine.begin() as conn:
        conn.execute(Chunk.__table__.delete())
    with ctx.db.session() as s:
        warning = empty_job_warning(s, job_pk)
    assert warning is not None and warning.startswith("the job has no chunks: ")
    assert "10 completed items held no text" in warning
    with ctx.db.engine.begin() as conn:
        conn.execute(Item.__table__.update().values(status="failed"))
    with ctx.db.session() as s:
        assert "none of its 11 items completed (the job is completed)" in str(
            empty_job_warning(s, job_pk)
        )
    path = export(ctx, job_pk, "parquet", 1000, 4000)
    assert pq.read_table(path).num_rows == 0
    assert str(pq.read_schema(path).field("speakers").type) == "list<element: string>"
