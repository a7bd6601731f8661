"""A data dir made by the previous release upgrades in place."""

from __future__ import annotations

import json
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text

from ragcast.retrieval.filters import Filters
from ragcast.retrieval.lexical import lexical_index
from ragcast.store.db import MIGRATIONS, Database


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
