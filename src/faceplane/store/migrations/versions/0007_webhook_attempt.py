"""tasks.webhook_attempt: the number of the webhook delivery attempt last claimed.

It is recorded when a delivery is claimed, before anything is sent, so a claim made after a
crash (or after a hold ran out) is the next attempt, never a second copy of the same one.
Tasks already stored count the attempts they recorded.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the nullable column and fill it from the attempts recorded so far."""
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("webhook_attempt", sa.Integer, nullable=True))
    tasks = sa.table(
        "tasks", sa.column("id"), sa.column("webhook_url"), sa.column("webhook_attempt")
    )
    attempts = sa.table("webhook_attempts", sa.column("task_id"))
    recorded = (
        sa.select(sa.func.count())
        .select_from(attempts)
        .where(attempts.c.task_id == tasks.c.id)
        .scalar_subquery()
    )
    op.execute(
        tasks.update().where(tasks.c.webhook_url.is_not(None)).values(webhook_attempt=recorded)
    )


def downgrade() -> None:
    """Drop the column."""
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("webhook_attempt")
