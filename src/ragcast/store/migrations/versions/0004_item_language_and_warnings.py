"""item language, its probability and transcript warnings

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 11:00:00

Items transcribed before this revision take the language their stored transcript names.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("language", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("language_probability", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("warnings", sa.JSON(), nullable=True))
        batch_op.create_index("ix_items_language", ["language"], unique=False)
    op.execute(
        "UPDATE items SET language = (SELECT transcripts.language FROM transcripts "
        "WHERE transcripts.item_id = items.id) "
        "WHERE language IS NULL AND EXISTS "
        "(SELECT 1 FROM transcripts WHERE transcripts.item_id = items.id)"
    )


def downgrade() -> None:
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.drop_index("ix_items_language")
        batch_op.drop_column("warnings")
        batch_op.drop_column("language_probability")
        batch_op.drop_column("language")
