"""Lexical matching that survives recognition errors: the sub-word (trigram) field beside
the word index, on SQLite and PostgreSQL, its deletes, its migration, and real speech."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import insert, select, text

from ragcast.retrieval.filters import Filters
from ragcast.retrieval.lexical import lexical_index
from ragcast.retrieval.subword import subwords
from ragcast.store.db import MIGRATIONS, Database
from ragcast.store.models import Chunk, Item, Job, User
from tests.conftest import DATA, Api, fresh_postgres

TEXTS = {
    "split": "unless a system is established for the frequent formal review of activities "
    "there under in this regard",
    "glued": "der hinter diesem portalliegende raum wurde als leichenhalle genutzt",
    "name": "la casa de buen worth estaba cerca del puerto",
    "exact": "the thereunder clause binds every party named in the contract",
    "other": "the harbour ferry leaves at nine in the morning",
}


def test_a_split_word_holds_every_trigram_of_the_whole_word() -> None:
    assert set(subwords(["thereunder"])) <= set(subwords(["there", "under"]))
    assert subwords(["广州", "州市"]) == []  # unspaced scripts are n-grams already


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.service)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        database = Database(f"sqlite:///{tmp_path / 'ragcast.db'}")
        database.migrate()
        yield database
        database.dispose()
        return
    with fresh_postgres() as url:
        database = Database(url.replace("postgresql://", "postgresql+psycopg://"))
        database.migrate()
        yield database
        database.dispose()


def _index(db: Database, texts: dict[str, str], name: str = "alice") -> tuple[int, dict[str, int]]:
    """A user with one job whose item holds ``texts`` as chunks, indexed: (user, ids)."""
    with db.session() as s:
        user = User(name=name)
        s.add(user)
        s.flush()
        job = Job(
            job_id=f"job-{name}",
            user_id=user.id,
            request_hash="h",
            request={},
            platform="documents",
            input_method="upload",
            embedding_model="local",
            dimensions=512,
            vector_db="chroma",
            collection="c",
            status="completed",
        )
        item = Item(index=0, content_id=f"c-{name}", source_type="upload", source_ref="d")
        item.stage = "indexed"
        job.items.append(item)
        s.add(job)
        s.flush()
        rows = [
            {"item_id": item.id, "chunk_index": n, "text": body, "token_count": 10}
            for n, body in enumerate(texts.values())
        ]
        s.execute(insert(Chunk), rows)
        ids = list(s.scalars(select(Chunk.id).where(Chunk.item_id == item.id).order_by(Chunk.id)))
        lexical_index(s).add(s, user.id, list(zip(ids, texts.values(), strict=True)))
        s.commit()
        return user.id, dict(zip(texts, ids, strict=True))


def _found(db: Database, user: int, query: str) -> list[int]:
    with db.session() as s:
        return [h.chunk_id for h in lexical_index(s).search(s, user, query, Filters(), 10).hits]


def test_split_glued_and_misspelled_words_are_found(db: Database) -> None:
    texts = {k: v for k, v in TEXTS.items() if k != "exact"}
    user, ids = _index(db, texts)
    assert _found(db, user, "thereunder")[0] == ids["split"]
    assert _found(db, user, "Portal")[0] == ids["glued"]
    assert _found(db, user, "Portal liegenden")[0] == ids["glued"]
    assert _found(db, user, "Wentworth")[0] == ids["name"]
    with db.session() as s:  # a chunk sharing a few common trigrams counts for little
        result = lexical_index(s).search(s, user, "thereunder", Filters(), 10)
    share = {h.chunk_id: h.score / result.ceiling for h in result.hits}
    assert share[ids["split"]] > 0.3 > share.get(ids["other"], 0.0)


def test_exact_words_rank_above_sub_word_matches(db: Database) -> None:
    user, ids = _index(db, TEXTS)
    with db.session() as s:
        result = lexical_index(s).search(s, user, "thereunder", Filters(), 10)
    assert [h.chunk_id for h in result.hits][:1] == [ids["exact"]]
    # "thereunder" is in the index: it is matched as it is, not cut into trigrams
    assert ids["split"] not in [h.chunk_id for h in result.hits]
    user2, ids2 = _index(db, {k: TEXTS[k] for k in ("split", "other")}, "bob")
    with db.session() as s:
        sub = lexical_index(s).search(s, user2, "thereunder review", Filters(), 10)
        exact = lexical_index(s).search(s, user2, "review", Filters(), 10)
    # a sub-word match counts, but scores under an exact one of the same query
    assert sub.hits[0].chunk_id == ids2["split"]
    assert 0 < sub.hits[0].score / sub.ceiling < exact.hits[0].score / exact.ceiling


def test_other_users_sub_words_are_not_theirs(db: Database) -> None:
    _, alice = _index(db, TEXTS)
    bob, _ = _index(db, {"other": TEXTS["other"]}, "bob")
    assert not set(_found(db, bob, "thereunder portalliegende")) & set(alice.values())


def _gram_rows(db: Database) -> int:
    with db.engine.connect() as conn:
        if db.engine.dialect.name == "sqlite":
            return int(conn.execute(text("SELECT count(*) FROM lexical_grams")).scalar_one())
        return int(
            conn.execute(
                text("SELECT count(*) FROM lexical_terms WHERE grams <> ''::tsvector")
            ).scalar_one()
        )


def test_deleting_a_job_removes_its_sub_words(db: Database) -> None:
    user, _ = _index(db, TEXTS)
    keep, _ = _index(db, {"other": TEXTS["other"]}, "bob")
    assert _gram_rows(db) == len(TEXTS) + 1
    with db.session() as s:
        s.delete(s.scalars(select(Job).where(Job.user_id == user)).one())
        s.commit()
    assert _gram_rows(db) == 1
    assert _found(db, user, "thereunder") == [] and _found(db, keep, "harbour") != []
    if db.engine.dialect.name != "sqlite":  # the stored counts follow the rows
        with db.engine.connect() as conn:
            left = conn.execute(
                text("SELECT count(*) FROM lexical_df WHERE term LIKE :p"), {"p": f"u{user}_%"}
            ).scalar_one()
            size = conn.execute(
                text("SELECT chunks FROM lexical_sizes WHERE user_id = :u"), {"u": user}
            ).scalar()
        assert left == 0 and not size


def test_stored_counts_match_the_rows_after_reindexing(db: Database) -> None:
    if db.engine.dialect.name == "sqlite":
        pytest.skip("FTS5 keeps its own counts")
    user, ids = _index(db, TEXTS)
    with db.session() as s:  # re-indexing a chunk (a re-chunk) moves its counts
        lexical_index(s).add(s, user, [(ids["other"], "portal portal portal")])
        s.commit()
    with db.engine.connect() as conn:
        stored = dict(
            conn.execute(text("SELECT term, df FROM lexical_df WHERE field = 0 AND df > 0"))
            .tuples()
            .all()
        )
        counted = dict(
            conn.execute(
                text(
                    "SELECT t, count(*) FROM lexical_terms, unnest(tsvector_to_array(terms)) t"
                    " GROUP BY t"
                )
            )
            .tuples()
            .all()
        )
    assert stored == counted and stored[f"u{user}_portal"] == 1
    assert _found(db, user, "portal")[0] == ids["other"]


def test_the_migration_gives_an_old_data_dir_its_sub_words(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'ragcast.db'}")
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0012")
        conn.execute(
            text(
                "INSERT INTO users (id, name, is_admin, created_at)"
                " VALUES (1, 'a', 0, '2026-12-01')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO jobs (id, job_id, user_id, request_hash, request, platform, "
                "input_method, embedding_model, dimensions, vector_db, collection, status, "
                "progress, stage, content_processed, total_content, completed_items, "
                "failed_items, embeddings, created_at) VALUES (1, 'old', 1, 'h', '{}', "
                "'documents', 'upload', 'local', 512, 'chroma', 'c', 'completed', 100, "
                "'Done', 1, 1, 1, 0, 2, '2026-12-01')"
            )
        )
        conn.execute(
            text(
                'INSERT INTO items (id, job_pk, "index", content_id, source_type, source_ref, '
                "status, stage, chunk_count, token_count, attempts, updated_at) VALUES (1, 1, 0, "
                "'u-1', 'upload', 'd', 'completed', 'indexed', 2, 20, 1, '2026-12-01')"
            )
        )
        for cid, key in ((1, "split"), (2, "other")):
            conn.execute(
                text(
                    "INSERT INTO chunks (id, item_id, chunk_index, text, token_count) "
                    "VALUES (:id, 1, :n, :t, 10)"
                ),
                {"id": cid, "n": cid - 1, "t": TEXTS[key]},
            )
            conn.execute(
                text("INSERT INTO lexical_fts (rowid, terms) VALUES (:id, :t)"),
                {"id": cid, "t": " ".join(f"u1_{w}" for w in TEXTS[key].split())},
            )
    db.migrate()
    assert _found(db, 1, "thereunder")[:1] == [1] and _gram_rows(db) == 2
    with db.engine.begin() as conn:
        conn.execute(text("DELETE FROM chunks WHERE id = 1"))
        assert conn.execute(text("SELECT count(*) FROM lexical_grams")).scalar_one() == 1
    db.dispose()


@pytest.fixture(scope="module")
def spoken(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """One app with clip11 (en) and clip13 (de) transcribed by the real models."""
    from fastapi.testclient import TestClient

    from ragcast.api.app import create_app
    from ragcast.auth import create_key
    from tests.conftest import make_settings

    settings = make_settings(tmp_path_factory.mktemp("spoken"))
    app = create_app(settings)
    with app.state.ctx.db.session() as s:
        key, _ = create_key(s, "alice")
    with TestClient(app) as client:
        api = Api(client=client, settings=settings, keys={"alice": key})
        docs = [api.upload(DATA / name) for name in ("clip11.wav", "clip13.wav")]
        assert api.submit("spoken", docs).status_code == 200
        assert api.wait("spoken", timeout=600)["status"] == "completed"
        yield api


def _titles(api: Api, query: str, **extra: Any) -> list[str]:
    body = {"query": query, "mode": "lexical", **extra}
    r = api.client.post("/api/public/bulk/search", json=body, headers=api.h())
    assert r.status_code == 200, r.text
    return list(dict.fromkeys(h["title"] for h in r.json()["results"]))


@pytest.mark.slow
def test_words_the_recogniser_split_or_glued_find_their_recording(spoken: Api) -> None:
    assert _titles(spoken, "thereunder")[:1] == ["clip11.wav"]
    assert _titles(spoken, "Portal")[:1] == ["clip13.wav"]
    assert _titles(spoken, "thereunder", mode="hybrid")[:1] == ["clip11.wav"]
