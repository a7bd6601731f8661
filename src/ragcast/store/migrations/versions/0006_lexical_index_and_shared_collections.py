"""lexical index, items by content id, and the local model named on each job

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 14:00:00

SQLite gets an FTS5 table (and a trigger that drops a chunk's row with the chunk);
PostgreSQL a ``tsvector`` table with a GIN index. Chunks indexed before this revision
are added to it. Jobs embedded with the ``local`` model before the default became
``use-multilingual-v3`` were embedded with all-MiniLM-L6-v2 (384 dimensions): their
stored request now names it, so their searches keep using it.
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op
from sqlalchemy.orm import Session

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

BATCH = 1000


def upgrade() -> None:
    bind = op.get_bind()
    op.create_index("ix_items_content_id", "items", ["content_id"], unique=False)
    if bind.dialect.name == "sqlite":
        op.execute(
            "CREATE VIRTUAL TABLE lexical_fts USING fts5("
            "terms, tokenize = \"unicode61 remove_diacritics 0 tokenchars '_'\")"
        )
        # per-term document counts: the query's ceiling score (see retrieval.lexical)
        op.execute("CREATE VIRTUAL TABLE lexical_vocab USING fts5vocab(lexical_fts, 'row')")
        op.execute(
            "CREATE TRIGGER chunks_lexical_delete AFTER DELETE ON chunks BEGIN "
            "DELETE FROM lexical_fts WHERE rowid = old.id; END"
        )
    else:
        op.create_table(
            "lexical_terms",
            sa.Column(
                "chunk_id",
                sa.Integer(),
                sa.ForeignKey("chunks.id", ondelete="CASCADE"),
                primary_key=True,
            ),
            sa.Column("user_id", sa.Integer(), nullable=False),
            sa.Column("terms", sa.dialects.postgresql.TSVECTOR(), nullable=False),
            sa.Column("length", sa.Integer(), nullable=False),
        )
        op.create_index("ix_lexical_terms_user_id", "lexical_terms", ["user_id"])
        op.execute("CREATE INDEX ix_lexical_terms_terms ON lexical_terms USING gin (terms)")
    _backfill(bind)
    _name_local_models(bind)


def _backfill(bind: sa.Connection) -> None:
    """Index the chunks of items already indexed into a vector store."""
    from ragcast.retrieval.lexical import lexical_index

    rows = bind.execute(
        sa.text(
            "SELECT c.id, c.text, j.user_id FROM chunks c JOIN items i ON i.id = c.item_id"
            " JOIN jobs j ON j.id = i.job_pk WHERE i.stage = 'indexed' ORDER BY c.id"
        )
    )
    with Session(bind=bind) as s:
        index = lexical_index(s)
        while batch := rows.fetchmany(BATCH):
            by_user: dict[int, list[tuple[int, str]]] = {}
            for chunk_id, body, user_id in batch:
                by_user.setdefault(int(user_id), []).append((int(chunk_id), str(body)))
            for user_id, chunks in by_user.items():
                index.add(s, user_id, chunks)


def _name_local_models(bind: sa.Connection) -> None:
    jobs = bind.execute(
        sa.text("SELECT id, request FROM jobs WHERE embedding_model = 'local' AND dimensions = 384")
    ).all()
    for job_pk, request in jobs:
        body = json.loads(request) if isinstance(request, str) else dict(request)
        block = body.get("embedding_model") or {}
        if block.get("model"):
            continue
        block["model"] = "all-MiniLM-L6-v2"
        body["embedding_model"] = block
        value = ":request" if bind.dialect.name == "sqlite" else "CAST(:request AS json)"
        bind.execute(
            sa.text(f"UPDATE jobs SET request = {value} WHERE id = :id"),
            {"request": json.dumps(body), "id": job_pk},
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS chunks_lexical_delete")
        op.execute("DROP TABLE IF EXISTS lexical_vocab")
        op.execute("DROP TABLE IF EXISTS lexical_fts")
    else:
        op.drop_table("lexical_terms")
    op.drop_index("ix_items_content_id", table_name="items")
