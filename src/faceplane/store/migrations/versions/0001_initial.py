"""Initial schema: the tables as they were when accounts landed (commit 839d8ee).

Tasks and collections name their tenant `owner`; apps have no default webhook yet; the
hand-made `schema_version` table of that time is part of it. This file never changes: a
database made by that code is stamped 0001 and upgraded from here.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ID = sa.String(64)


def upgrade() -> None:
    """Create every table of the 839d8ee schema."""
    op.create_table(
        "schema_version",
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("applied_at", sa.Float, nullable=False),
    )
    op.create_table(
        "tasks",
        sa.Column("id", ID, primary_key=True),
        sa.Column("owner", ID, nullable=False),
        sa.Column("operation", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("input_json", sa.Text, nullable=False),
        sa.Column("options_json", sa.Text, nullable=False),
        sa.Column("result_json", sa.Text),
        sa.Column("error_json", sa.Text),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("max_attempts", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("started_at", sa.Float),
        sa.Column("finished_at", sa.Float),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("lease_until", sa.Float),
        sa.Column("worker", ID),
        sa.Column("cancel_requested", sa.Boolean, nullable=False),
        sa.Column("idempotency_key", sa.String(200)),
        sa.Column("batch_id", ID),
        sa.Column("webhook_url", sa.Text),
        sa.Column("webhook_secret", sa.String(128)),
        sa.Column("webhook_state", sa.String(16)),
        sa.Column("webhook_next_at", sa.Float),
        sa.Column("purged", sa.Boolean, nullable=False),
        sa.UniqueConstraint("owner", "idempotency_key", name="uq_tasks_owner_idem"),
    )
    op.create_index("ix_tasks_status_created", "tasks", ["status", "created_at"])
    op.create_index("ix_tasks_owner_created", "tasks", ["owner", "created_at"])
    op.create_index("ix_tasks_webhook", "tasks", ["webhook_state", "webhook_next_at"])

    op.create_table(
        "webhook_attempts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("task_id", ID, sa.ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("http_status", sa.Integer),
        sa.Column("error", sa.Text),
        sa.Column("duration_ms", sa.Float),
    )
    op.create_index("ix_webhook_attempts_task", "webhook_attempts", ["task_id"])

    op.create_table(
        "collections",
        sa.Column("id", ID, primary_key=True),
        sa.Column("owner", ID, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("model", ID, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.UniqueConstraint("owner", "name", name="uq_collections_owner_name"),
    )
    op.create_table(
        "subjects",
        sa.Column("id", ID, primary_key=True),
        sa.Column(
            "collection_id",
            ID,
            sa.ForeignKey("collections.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("external_id", sa.String(200)),
        sa.Column("metadata_json", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.UniqueConstraint("collection_id", "name", name="uq_subjects_collection_name"),
    )
    op.create_index("ix_subjects_collection", "subjects", ["collection_id", "created_at"])

    op.create_table(
        "faces",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("token", ID, nullable=False, unique=True),
        sa.Column(
            "collection_id",
            ID,
            sa.ForeignKey("collections.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "subject_id", ID, sa.ForeignKey("subjects.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("model", ID, nullable=False),
        sa.Column("embedding", sa.LargeBinary, nullable=False),
        sa.Column("quality_json", sa.Text, nullable=False),
        sa.Column("box_json", sa.Text, nullable=False),
        sa.Column("crop_key", sa.String(300)),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_faces_collection_seq", "faces", ["collection_id", "seq"])
    op.create_index("ix_faces_subject", "faces", ["subject_id"])

    op.create_table(
        "face_removals",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("collection_id", ID, nullable=False),
        sa.Column("face_seq", sa.Integer, nullable=False),
        sa.Column("at", sa.Float, nullable=False),
    )
    op.create_index("ix_face_removals_collection_seq", "face_removals", ["collection_id", "seq"])

    op.create_table(
        "companies",
        sa.Column("id", ID, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "users",
        sa.Column("id", ID, primary_key=True),
        sa.Column(
            "company_id", ID, sa.ForeignKey("companies.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("email", sa.String(320), nullable=False, unique=True),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "apps",
        sa.Column("id", ID, primary_key=True),
        sa.Column(
            "company_id", ID, sa.ForeignKey("companies.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("user_id", ID, sa.ForeignKey("users.id", ondelete="SET NULL")),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("key_hash", ID, nullable=False, unique=True),
        sa.Column("key_sealed", sa.LargeBinary, nullable=False),
        sa.Column("key_prefix", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("expires_at", sa.Float),
        sa.Column("rate_limit", sa.Integer, nullable=False),
        sa.Column("quota", sa.Integer),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("rotated_at", sa.Float),
    )
    op.create_table(
        "tokens",
        sa.Column("hash", ID, primary_key=True),
        sa.Column("user_id", ID, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("revoked", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "nonces",
        sa.Column("app_id", ID, primary_key=True),
        sa.Column("nonce", sa.String(128), primary_key=True),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_table(
        "counters",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("value", sa.Integer, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("company_id", ID),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(200), nullable=False),
        sa.Column("resource", sa.String(500), nullable=False),
        sa.Column("status", sa.Integer),
        sa.Column("ip", ID),
    )
    op.create_index("ix_audit_company_at", "audit_log", ["company_id", "at"])


def downgrade() -> None:
    """Drop every table (and with them every row)."""
    for table in (
        "audit_log",
        "counters",
        "nonces",
        "tokens",
        "apps",
        "users",
        "companies",
        "face_removals",
        "faces",
        "subjects",
        "collections",
        "webhook_attempts",
        "tasks",
        "schema_version",
    ):
        op.drop_table(table)
