"""every speaker of a chunk searchable by name, and a speaker library per user

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04 19:00:00

``chunk_speakers`` lists each chunk's speakers by the name shown (the label while
unnamed), so the ``speaker`` filter matches any of them; it is filled here from
``chunks.speakers`` and the items' names. ``voices`` holds the voices users named. The
vectors of diarized chunks gain a ``speaker_names`` list in their metadata: they are
listed in ``reembed_chunks`` and written again where the workers run
(``ragcast.pipeline.repairs``), as the vector store cannot be reached from here.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def upgrade() -> None:
    op.create_table(
        "chunk_speakers",
        sa.Column(
            "chunk_id",
            sa.Integer(),
            sa.ForeignKey("chunks.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("name", sa.String(length=128), primary_key=True),
    )
    op.create_index("ix_chunk_speakers_name", "chunk_speakers", ["name", "chunk_id"])
    op.create_table(
        "voices",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("vector", sa.JSON(), nullable=False),
        sa.Column("speech_s", sa.Float(), nullable=False),
        sa.Column(
            "item_id", sa.Integer(), sa.ForeignKey("items.id", ondelete="SET NULL"), nullable=True
        ),
        sa.Column("label", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_voices_user_id", "voices", ["user_id"])
    op.create_index("ix_voices_item_id", "voices", ["item_id"])
    op.create_index("ix_voices_user_name", "voices", ["user_id", "name"])
    bind = op.get_bind()
    rows = bind.execute(
        sa.text(
            "SELECT c.id, c.speakers, i.speaker_map, c.embedding IS NOT NULL FROM chunks c"
            " JOIN items i ON i.id = c.item_id WHERE c.speakers IS NOT NULL"
        )
    ).all()
    names: list[dict[str, Any]] = []
    embedded: list[dict[str, Any]] = []
    for chunk_id, labels, speaker_map, has_vector in rows:
        given = _json(speaker_map) or {}
        shown = dict.fromkeys(given.get(label) or label for label in _json(labels) or [])
        names.extend({"c": chunk_id, "n": name[:128]} for name in shown)
        if has_vector:
            embedded.append({"c": chunk_id})
    if names:
        bind.execute(sa.text("INSERT INTO chunk_speakers (chunk_id, name) VALUES (:c, :n)"), names)
    if embedded:
        existing = {r[0] for r in bind.execute(sa.text("SELECT chunk_id FROM reembed_chunks"))}
        fresh = [row for row in embedded if row["c"] not in existing]
        if fresh:
            bind.execute(sa.text("INSERT INTO reembed_chunks (chunk_id) VALUES (:c)"), fresh)


def downgrade() -> None:
    op.drop_index("ix_voices_user_name", table_name="voices")
    op.drop_index("ix_voices_item_id", table_name="voices")
    op.drop_index("ix_voices_user_id", table_name="voices")
    op.drop_table("voices")
    op.drop_index("ix_chunk_speakers_name", table_name="chunk_speakers")
    op.drop_table("chunk_speakers")
