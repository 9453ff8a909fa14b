"""users.rate_limit and users.quota (caps an admin sets); data_signatures (Pho.to replays).

A user's caps bound its token's requests and its apps'. Every accepted Pho.to SIGN_DATA is
kept for as long as the key that signed it, so an identical signed call is refused however
late it comes (the nonce table forgot it after 20 minutes).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the two nullable columns (existing users stay uncapped) and the table."""
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("rate_limit", sa.Integer, nullable=True))
        batch.add_column(sa.Column("quota", sa.Integer, nullable=True))
    op.create_table(
        "data_signatures",
        sa.Column(
            "app_id",
            sa.String(64),
            sa.ForeignKey("apps.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("created_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    """Drop the table and the columns."""
    op.drop_table("data_signatures")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("quota")
        batch.drop_column("rate_limit")
