"""tasks.origin: the route family that created a task; an index for the per-company queue cap.

Pho.to's `getresult` takes a request id without credentials, so it must serve only the tasks
Pho.to's `addtask` created: a native, AILab or Oz task id answers WrongID there. Tasks stored
before this revision have no origin (NULL) and are never served by request id alone; the
native and vendor routes that authenticate still serve them to their company.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the nullable column (batch mode, for SQLite) and the (company_id, status) index."""
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("origin", sa.String(16), nullable=True))
    op.create_index("ix_tasks_company_status", "tasks", ["company_id", "status"])


def downgrade() -> None:
    """Drop the index and the column."""
    op.drop_index("ix_tasks_company_status", table_name="tasks")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("origin")
