"""the recogniser's confidence on every chunk

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03 15:00:00

``chunks.confidence`` is the mean word probability of a chunk's recognised words (0..1).
Transcripts stored before this revision kept no word probabilities, so their chunks stay
NULL until the item is transcribed again; captions and documents are always NULL. A
``min_confidence`` search filter leaves NULL chunks out.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("chunks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("confidence", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("chunks", schema=None) as batch_op:
        batch_op.drop_column("confidence")
