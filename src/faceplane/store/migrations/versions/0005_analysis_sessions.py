"""Analysis sessions (Oz folders): sessions, their media and their analyses.

Oz folders were blobs (``oz/<folder_id>/folder.json``); they become rows. Folders kept as blobs
by earlier versions are not carried over: they held only uploads whose analyses live on as
tasks, and the Oz routes never listed them.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create analysis_sessions, session_media and session_analyses."""
    op.create_table(
        "analysis_sessions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("company_id", sa.String(64), nullable=False),
        sa.Column("creator", sa.String(200), nullable=False),
        sa.Column("tags_json", sa.Text, nullable=False),
        sa.Column("metadata_json", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index(
        "ix_analysis_sessions_company_created", "analysis_sessions", ["company_id", "created_at"]
    )
    op.create_table(
        "session_media",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column(
            "session_id",
            sa.String(64),
            sa.ForeignKey("analysis_sessions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("company_id", sa.String(64), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("tags_json", sa.Text, nullable=False),
        sa.Column("metadata_json", sa.Text, nullable=False),
        sa.Column("blob_key", sa.String(300), nullable=False),
        sa.Column("original_name", sa.String(255), nullable=False),
        sa.Column("size_bytes", sa.Integer, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_session_media_session", "session_media", ["session_id", "position"])
    op.create_table(
        "session_analyses",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column(
            "session_id",
            sa.String(64),
            sa.ForeignKey("analysis_sessions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("company_id", sa.String(64), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("task_id", sa.String(64), nullable=False),
        sa.Column("inputs_json", sa.Text, nullable=False),
        sa.Column("params_json", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_session_analyses_session", "session_analyses", ["session_id", "created_at"])
    op.create_index("ix_session_analyses_task", "session_analyses", ["task_id"])


def downgrade() -> None:
    """Drop the three tables (children first)."""
    op.drop_index("ix_session_analyses_task", table_name="session_analyses")
    op.drop_index("ix_session_analyses_session", table_name="session_analyses")
    op.drop_table("session_analyses")
    op.drop_index("ix_session_media_session", table_name="session_media")
    op.drop_table("session_media")
    op.drop_index("ix_analysis_sessions_company_created", table_name="analysis_sessions")
    op.drop_table("analysis_sessions")
