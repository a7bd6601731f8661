"""job work counter for incremental progress; items indexed by job, status and index

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 23:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN: a batch (copy and rename) of ``jobs`` would cascade its items away.
    op.add_column(
        "jobs", sa.Column("work_done", sa.Float(), nullable=False, server_default=sa.text("0"))
    )
    op.create_index("ix_items_job_status", "items", ["job_pk", "status", "index"])


def downgrade() -> None:
    op.drop_index("ix_items_job_status", table_name="items")
    op.drop_column("jobs", "work_done")
