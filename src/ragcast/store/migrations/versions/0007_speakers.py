"""speakers: each chunk's speakers and main speaker, each item's speaker names

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 17:00:00

Chunks made before this revision have no speakers (their transcripts were not diarized).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("chunks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("speaker", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("speakers", sa.JSON(), nullable=True))
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("speaker_map", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.drop_column("speaker_map")
    with op.batch_alter_table("chunks", schema=None) as batch_op:
        batch_op.drop_column("speakers")
        batch_op.drop_column("speaker")
