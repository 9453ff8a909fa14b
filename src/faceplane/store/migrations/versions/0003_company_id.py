"""The tenant column is `company_id` everywhere: rename `owner` in tasks and collections.

Their unique constraints and indexes are renamed with them, and the hand-made
`schema_version` table (the version record before Alembic) goes.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _rename_tenant(old: str, new: str, old_word: str, new_word: str) -> None:
    # RENAME COLUMN is native on both databases (SQLite >= 3.25) and carries the constraint
    # and the indexes along; only their names are left to change. Renaming inside a batch
    # would not do: there, later operations still know the column by its old name.
    for table in ("tasks", "collections"):
        op.alter_column(
            table, old, new_column_name=new, existing_type=sa.String(64), existing_nullable=False
        )
    op.drop_index(f"ix_tasks_{old_word}_created", "tasks")
    op.create_index(f"ix_tasks_{new_word}_created", "tasks", [new, "created_at"])
    with op.batch_alter_table("tasks") as batch:
        batch.drop_constraint(f"uq_tasks_{old_word}_idem", type_="unique")
        batch.create_unique_constraint(f"uq_tasks_{new_word}_idem", [new, "idempotency_key"])
    with op.batch_alter_table("collections") as batch:
        batch.drop_constraint(f"uq_collections_{old_word}_name", type_="unique")
        batch.create_unique_constraint(f"uq_collections_{new_word}_name", [new, "name"])


def upgrade() -> None:
    """Rename owner -> company_id with its constraints and indexes; drop schema_version."""
    _rename_tenant("owner", "company_id", "owner", "company")
    op.drop_table("schema_version")


def downgrade() -> None:
    """Back to `owner`, and the schema_version table the code of that time reads."""
    version = op.create_table(
        "schema_version",
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("applied_at", sa.Float, nullable=False),
    )
    op.bulk_insert(version, [{"version": 1, "applied_at": time.time()}])
    _rename_tenant("company_id", "owner", "company", "owner")
