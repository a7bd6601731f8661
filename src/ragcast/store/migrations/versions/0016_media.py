"""what is kept of each recording once its jobs are done

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06 10:00:00

``uploads.media_kept`` and ``items.media_kept`` record the retention decided for a
recording (``RAGCAST_KEEP_MEDIA`` or a job's ``settings.keepMedia``) once every job using
it finished: ``original``, ``audio`` (an audio rendition only) or ``none``; NULL while
undecided. Items of jobs finished before this revision kept everything, as ragcast did
then: they are marked ``original``, so the start-up sweep of ragcast.pipeline.retention,
which decides for finished items still NULL, leaves them alone whatever the setting says
(a later job of the same recording decides for it when that job closes).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("uploads", schema=None) as batch_op:
        batch_op.add_column(sa.Column("media_kept", sa.String(length=16), nullable=True))
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("media_kept", sa.String(length=16), nullable=True))
    op.execute(
        "UPDATE items SET media_kept = 'original' WHERE job_pk IN "
        "(SELECT id FROM jobs WHERE finished_at IS NOT NULL)"
    )


def downgrade() -> None:
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.drop_column("media_kept")
    with op.batch_alter_table("uploads", schema=None) as batch_op:
        batch_op.drop_column("media_kept")
