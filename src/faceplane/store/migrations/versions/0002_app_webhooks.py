"""App default webhooks: apps.webhook_url and apps.webhook_secret (commit adfdd3f).

A database made before them broke every API-key login (`no such column: apps.webhook_url`):
the code read columns nothing had added.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the app's default webhook (URL and signing secret), empty for existing apps."""
    with op.batch_alter_table("apps") as batch:
        batch.add_column(sa.Column("webhook_url", sa.Text))
        batch.add_column(sa.Column("webhook_secret", sa.String(128)))


def downgrade() -> None:
    """Drop the app default webhook columns."""
    with op.batch_alter_table("apps") as batch:
        batch.drop_column("webhook_secret")
        batch.drop_column("webhook_url")
