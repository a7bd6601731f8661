"""webhook endpoints and turns for fair delivery; indexes of the sender's claim

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 10:00:00
"""

from __future__ import annotations

from urllib.parse import urlsplit

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_PORTS = {"http": 80, "https": 443}


def _endpoint(url: str) -> str:
    """``scheme://host:port`` of a URL, as ``ragcast.store.models.endpoint_of`` wrote it
    when this revision was made (a copy: a migration must not change with the code)."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    try:
        port = parts.port or _PORTS.get(scheme, 0)
    except ValueError:
        port = 0
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def upgrade() -> None:
    # Plain ADD COLUMNs: a batch (copy and rename) of ``webhooks`` would cascade its
    # deliveries away. Nullable in the table; every insert fills ``endpoint`` in.
    op.add_column("webhooks", sa.Column("endpoint", sa.String(length=320), nullable=True))
    op.add_column("webhooks", sa.Column("served_at", sa.DateTime(timezone=True), nullable=True))
    hooks = sa.table(
        "webhooks", sa.column("id", sa.Integer()), sa.column("url"), sa.column("endpoint")
    )
    conn = op.get_bind()
    for pk, url in conn.execute(sa.select(hooks.c.id, hooks.c.url)).all():
        conn.execute(hooks.update().where(hooks.c.id == pk).values(endpoint=_endpoint(str(url))))
    op.create_index(
        "ix_webhook_deliveries_due",
        "webhook_deliveries",
        ["webhook_pk", "status", "next_attempt_at"],
    )
    op.create_index("ix_webhook_deliveries_claimed_until", "webhook_deliveries", ["claimed_until"])


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_claimed_until", table_name="webhook_deliveries")
    op.drop_index("ix_webhook_deliveries_due", table_name="webhook_deliveries")
    op.drop_column("webhooks", "served_at")
    op.drop_column("webhooks", "endpoint")
