"""A data dir made by the previous release upgrades in place."""

from __future__ import annotations

import importlib.util
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from alembic import command
from alembic.config import Config
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from ragcast.api.app import create_app
from ragcast.auth import create_key
from ragcast.pipeline.repairs import pending
from ragcast.pipeline.submission import stored_request
from ragcast.pipeline.types import Segment, Transcript, Word
from ragcast.providers.registry import Providers
from ragcast.providers.vectorstores.base import VectorRecord
from ragcast.retrieval.filters import Filters
from ragcast.retrieval.layout import collection_name
from ragcast.retrieval.lexical import lexical_index
from ragcast.spec import EmbeddingModelConfig, JobCreate
from ragcast.store.db import MIGRATIONS, Database
from ragcast.store.models import Chunk
from ragcast.store.models import Transcript as TranscriptRow
from tests.conftest import DATA, fresh_postgres, job_body, make_settings


def test_a_data_dir_of_the_previous_release_upgrades_in_place(tmp_path: Path) -> None:
    """Items gain languages, indexed chunks their lexical rows, local jobs their model,
    chunks and items their (empty) speaker columns."""
    db = Database(f"sqlite:///{tmp_path / 'ragcast.db'}")
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0003")  # the schema the previous release left
    with db.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO users (id, name, is_admin, created_at) "
                "VALUES (1, 'alice', 0, '2026-11-30 00:00:00')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO jobs (id, job_id, user_id, request_hash, request, platform, "
                "input_method, embedding_model, dimensions, vector_db, collection, status, "
                "progress, stage, content_processed, total_content, completed_items, "
                "failed_items, embeddings, created_at) VALUES (1, 'old', 1, 'h', "
                '\'{"embedding_model": {"id": "local"}}\', '
                "'documents', 'upload', 'local', 384, 'chroma', 'c', 'completed', 100, "
                "'Done', 2, 2, 2, 0, 2, '2026-11-30 00:00:00')"
            )
        )
        for n in (1, 2):
            conn.execute(
                text(
                    'INSERT INTO items (id, job_pk, "index", content_id, source_type, '
                    "source_ref, status, stage, chunk_count, token_count, attempts, updated_at) "
                    f"VALUES ({n}, 1, {n - 1}, 'upload-{n}', 'upload', 'doc{n}', 'completed', "
                    "'indexed', 1, 10, 1, '2026-11-30 00:00:00')"
                )
            )
        conn.execute(
            text(
                "INSERT INTO transcripts (item_id, source, language, duration_s, data, text, "
                "created_at) VALUES (1, 'asr', 'en', 5.0, '{\"segments\": []}', 'hi', "
                "'2026-11-30 00:00:00')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO chunks (id, item_id, chunk_index, text, token_count) VALUES "
                "(1, 1, 0, 'The ferry leaves at nine', 6), (2, 2, 0, 'Quilter speaks', 3)"
            )
        )
    db.migrate()
    with db.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT id, language, language_probability, warnings FROM items ORDER BY id")
        ).all()
    assert [tuple(r) for r in rows] == [(1, "en", None, None), (2, None, None, None)]
    with db.session() as s:
        found = lexical_index(s).search(s, 1, "quilter", Filters(), 5).hits
        request = s.scalar(text("SELECT request FROM jobs WHERE id = 1"))
    assert [h.chunk_id for h in found] == [2]
    assert json.loads(request)["embedding_model"] == {"id": "local", "model": "all-MiniLM-L6-v2"}
    with db.engine.connect() as conn:  # chunks of the old release have no speakers
        speakers = conn.execute(text("SELECT speaker, speakers FROM chunks WHERE id = 1")).one()
        names = conn.execute(text("SELECT speaker_map FROM items WHERE id = 1")).scalar_one()
    assert tuple(speakers) == (None, None) and names is None
    with db.engine.begin() as conn:  # a chunk deleted later takes its lexical row along
        conn.execute(text("DELETE FROM items WHERE id = 2"))
        assert conn.execute(text("SELECT count(*) FROM lexical_fts")).scalar_one() == 1
    db.dispose()


def _old_terms() -> Any:
    """The lexical terms of the previous release (migration 0006 carries them)."""
    path = MIGRATIONS / "versions" / "0006_lexical_index_and_shared_collections.py"
    spec = importlib.util.spec_from_file_location("ragcast_migration_0006", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module._terms


@pytest.fixture(scope="module")
def spoken(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Transcript]:
    """Whisper's transcripts of the Chinese and Japanese recordings, made once."""
    providers = Providers(make_settings(tmp_path_factory.mktemp("whisper")))
    transcriber = providers.transcriber()
    return {
        name: transcriber.transcribe(DATA / name, language=None, should_stop=lambda: False)
        for name in ("clip16.wav", "clip24.mp3")
    }


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | None]:
    """The job store of the old data dir: the data dir's SQLite, or a fresh PostgreSQL."""
    if request.param == "sqlite":
        yield None
    else:
        with fresh_postgres() as url:
            yield url


@pytest.mark.slow
def test_a_data_dir_of_the_previous_release_gets_its_scripts_back(
    tmp_path: Path, spoken: dict[str, Transcript], store_url: str | None
) -> None:
    """Recordings chunked by the previous release (``廣 州 市``) read as transcribed after
    the upgrade: chunk and transcript text, lexical rows (Chinese folded), and vectors
    embedded again from the new text; a document keeps its own spaces."""
    settings = make_settings(tmp_path, database_url=store_url)
    providers = Providers(settings)
    spec = providers.resolve_embedding(EmbeddingModelConfig(id="local"))
    embedder = providers.embedder(spec)
    sqlite = store_url is None

    def as_json(name: str) -> str:
        return f":{name}" if sqlite else f"CAST(:{name} AS json)"

    words = ["上海", "天气", "很好"]
    document = Transcript(
        "document", "zh", None, [Segment(" ".join(words), words=[Word(w) for w in words])]
    )
    transcripts = {**spoken, "notes.txt": document}
    # what the previous release stored: units joined with spaces, segments too
    old = {n: " ".join(w.text for s in t.segments for w in s.words) for n, t in transcripts.items()}
    assert old["clip16.wav"].startswith("廣 州 市")
    vectors = dict(zip(old, embedder.embed_batch(list(old.values())), strict=True))

    db = Database(settings.resolved_database_url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0011")
    body = JobCreate.model_validate(job_body("old", ["d1", "d2", "d3"]))
    request = json.dumps(stored_request(body, spec))
    collection = collection_name(spec)
    terms = _old_terms()
    store = providers.vector_store("chroma")
    store.ensure_collection(collection, spec.dimensions)
    with db.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO users (id, name, is_admin, created_at) "
                "VALUES (1, 'alice', :no, '2026-12-01 00:00:00')"
            ),
            {"no": False},
        )
        conn.execute(
            text(
                "INSERT INTO jobs (id, job_id, user_id, request_hash, request, platform, "
                "input_method, embedding_model, dimensions, vector_db, collection, status, "
                "progress, stage, content_processed, total_content, completed_items, "
                "failed_items, embeddings, created_at) VALUES (1, 'old', 1, 'h', "
                f"{as_json('request')}, "
                "'documents', 'upload', 'local', :dims, 'chroma', :collection, 'completed', "
                "100, 'Done', 3, 3, 3, 0, 3, '2026-12-01 00:00:00')"
            ),
            {"request": request, "dims": spec.dimensions, "collection": collection},
        )
        for n, (name, data) in enumerate(transcripts.items(), start=1):
            conn.execute(
                text(
                    'INSERT INTO items (id, job_pk, "index", content_id, source_type, '
                    "source_ref, title, status, stage, chunk_count, token_count, attempts, "
                    "language, updated_at) VALUES (:n, 1, :index, :cid, 'upload', :ref, :name, "
                    "'completed', 'indexed', 1, 10, 1, :lang, '2026-12-01 00:00:00')"
                ),
                {
                    "n": n,
                    "index": n - 1,
                    "cid": f"upload-{n}",
                    "ref": f"d{n}",
                    "name": name,
                    "lang": data.language,
                },
            )
            conn.execute(
                text(
                    "INSERT INTO transcripts (item_id, source, language, duration_s, data, "
                    "text, created_at) VALUES (:n, :source, :lang, :dur, "
                    f"{as_json('data')}, :text, "
                    "'2026-12-01 00:00:00')"
                ),
                {
                    "n": n,
                    "source": data.source,
                    "lang": data.language,
                    "dur": data.duration_s,
                    "data": json.dumps(data.to_dict()),
                    "text": " ".join(s.text for s in data.segments),
                },
            )
            conn.execute(
                text(
                    "INSERT INTO chunks (id, item_id, chunk_index, text, token_count, embedding) "
                    "VALUES (:n, :n, 0, :text, 10, :vec)"
                ),
                {"n": n, "text": old[name], "vec": vectors[name].astype(np.float32).tobytes()},
            )
            owned = terms(1, old[name])
            if sqlite:
                conn.execute(
                    text("INSERT INTO lexical_fts (rowid, terms) VALUES (:n, :terms)"),
                    {"n": n, "terms": " ".join(owned)},
                )
            else:
                conn.execute(
                    text(
                        "INSERT INTO lexical_terms (chunk_id, user_id, terms, length) VALUES "
                        "(:n, 1, array_to_tsvector(CAST(:terms AS text[])), :length)"
                    ),
                    {"n": n, "terms": sorted(set(owned)), "length": len(owned)},
                )
            meta = {
                "job_id": "old",
                "content_id": f"upload-{n}",
                "chunk_index": 0,
                "title": name,
                "source": name,
                "language": data.language,
            }
            store.upsert(
                collection,
                [VectorRecord(f"upload-{n}:0", vectors[name], old[name], meta)],
                tenant="u1",
            )
    db.dispose()

    app = create_app(settings)  # upgrades, then embeds the changed chunks again
    with app.state.ctx.db.session() as s:
        key, _ = create_key(s, "alice")  # the user of the old data dir
        s.commit()
    with TestClient(app) as client:
        ctx = app.state.ctx
        deadline = time.monotonic() + 120
        while pending(ctx) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert pending(ctx) == 0
        with ctx.db.session() as s:
            chunks = dict(s.execute(select(Chunk.item_id, Chunk.text)).tuples().all())
            stored_text = dict(
                s.execute(select(TranscriptRow.item_id, TranscriptRow.text)).tuples().all()
            )
            embedded = dict(s.execute(select(Chunk.item_id, Chunk.embedding)).tuples().all())
        for n, (name, data) in enumerate(transcripts.items(), start=1):
            new = "".join(s.text for s in data.segments) if name != "notes.txt" else old[name]
            print(name, repr(old[name]), "->", repr(chunks[n]))
            assert chunks[n] == new and stored_text[n] == new
            expected = embedder.embed_batch([new])[0]
            assert np.allclose(np.frombuffer(embedded[n], dtype=np.float32), expected, atol=1e-5)
            (hit,) = store.query(
                collection, expected, 1, {"content_id": f"upload-{n}"}, tenant="u1"
            )
            assert hit.text == new and hit.score > 0.9999
            if name != "notes.txt":
                assert not np.allclose(vectors[name], expected, atol=1e-3)  # it did change
        headers = {"Authorization": f"Bearer {key}"}
        for query, name in (
            ("電球", "clip24.mp3"),
            ("外れ", "clip24.mp3"),
            ("广州市", "clip16.wav"),
            ("廣州", "clip16.wav"),
            ("天气", "notes.txt"),
            ("天氣", "notes.txt"),
        ):
            r = client.post(
                "/api/public/bulk/search",
                json={"query": query, "mode": "lexical"},
                headers=headers,
            )
            assert r.status_code == 200, r.text
            hits = r.json()["results"]
            assert hits and hits[0]["title"] == name, (query, hits)
