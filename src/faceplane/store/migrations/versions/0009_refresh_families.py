"""tokens.family: every access and refresh token descending from one login shares it.

A refresh token presented again after it was spent is taken for a stolen one, and its whole
family is revoked. Tokens issued before this revision have no family (their reuse revokes
every token of the user).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the nullable column and its index."""
    with op.batch_alter_table("tokens") as batch:
        batch.add_column(sa.Column("family", sa.String(32), nullable=True))
    op.create_index("ix_tokens_family", "tokens", ["family"])


def downgrade() -> None:
    """Drop the index and the column."""
    op.drop_index("ix_tokens_family", "tokens")
    with op.batch_alter_table("tokens") as batch:
        batch.drop_column("family")
