"""tasks.request_hash: the sha256 of the canonical request submitted under an idempotency key.

A reused key with another request answers TASK_CONFLICT (409) instead of silently returning
the first task; tasks stored before this revision have no hash, and their key alone decides.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the nullable column (batch mode: SQLite cannot ALTER every way PostgreSQL can)."""
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("request_hash", sa.String(64), nullable=True))


def downgrade() -> None:
    """Drop the column."""
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("request_hash")
