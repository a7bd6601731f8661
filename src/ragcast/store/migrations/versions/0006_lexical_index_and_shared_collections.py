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
import re
import unicodedata

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

BATCH = 1000

# The lexical terms exactly as this revision indexed them (retrieval/tokenize.py of its
# release): a migration carries what it needs, so later changes to the live index cannot
# change how an old data dir upgrades.
_UNSPACED = (
    "\u0e00-\u0eff"
    "\u1000-\u109f"
    "\u1780-\u17ff"
    "\u3040-\u30ff"
    "\u3400-\u4dbf"
    "\u4e00-\u9fff"
    "\uac00-\ud7af"
    "\uf900-\ufaff"
    "\U00020000-\U0002ffff"
)
_RUN = re.compile(rf"[{_UNSPACED}]+|[^\W_{_UNSPACED}]+")
_IS_UNSPACED = re.compile(rf"[{_UNSPACED}]")
_MAX_TERM = 40


def _terms(user_id: int, text: str) -> list[str]:
    """A chunk's terms, owned by its user (``u17_tide``), CJK runs as bigrams."""
    out: list[str] = []
    for run in _RUN.findall(unicodedata.normalize("NFKC", text).casefold()):
        if _IS_UNSPACED.match(run):
            out.extend([run] if len(run) == 1 else [run[n : n + 2] for n in range(len(run) - 1)])
        elif len(run) <= _MAX_TERM:
            out.append(run)
    return [f"u{user_id}_{t}" for t in out]


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
    rows = bind.execute(
        sa.text(
            "SELECT c.id, c.text, j.user_id FROM chunks c JOIN items i ON i.id = c.item_id"
            " JOIN jobs j ON j.id = i.job_pk WHERE i.stage = 'indexed' ORDER BY c.id"
        )
    )
    sqlite = bind.dialect.name == "sqlite"
    while batch := rows.fetchmany(BATCH):
        owned = [(int(cid), _terms(int(user), str(body))) for cid, body, user in batch]
        if sqlite:
            bind.execute(
                sa.text("INSERT INTO lexical_fts (rowid, terms) VALUES (:id, :terms)"),
                [{"id": cid, "terms": " ".join(t)} for cid, t in owned],
            )
        else:
            users = {int(cid): int(user) for cid, _, user in batch}
            bind.execute(
                sa.text(
                    "INSERT INTO lexical_terms (chunk_id, user_id, terms, length) VALUES"
                    " (:id, :user, array_to_tsvector(CAST(:terms AS text[])), :length)"
                    " ON CONFLICT (chunk_id) DO NOTHING"
                ),
                [
                    {"id": cid, "user": users[cid], "terms": sorted(set(t)), "length": len(t)}
                    for cid, t in owned
                ],
            )


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
