"""Throw-away databases for the schema tests, and the schemas made before Alembic.

`legacy_metadata(generation)` is the table definitions of a released version, copied from
its `store/db.py` (column by column, as that code declared them); `make_legacy_database`
builds one the way that code's `migrate()` did: `create_all` plus `schema_version` = 1.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import (
    Boolean,
    Column,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    text,
)

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432"
# The released versions that made databases without Alembic, oldest first: accounts landed
# (839d8ee), app default webhooks (adfdd3f), the tenant column renamed company_id (17ff2b7).
GENERATIONS = ("839d8ee", "adfdd3f", "17ff2b7")


def postgres_unavailable() -> str | None:
    """Why PostgreSQL cannot be tested here, or None when it can."""
    engine = create_engine(f"{PG_URL}/postgres", connect_args={"connect_timeout": 2})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        return f"PostgreSQL at 127.0.0.1:5432 does not answer ({type(exc).__name__})"
    finally:
        engine.dispose()
    return None


@contextmanager
def throwaway_postgres() -> Iterator[str]:
    """The URL of a new PostgreSQL database, dropped afterwards; skips loudly without one."""
    reason = postgres_unavailable()
    if reason:
        pytest.skip(f"POSTGRESQL NOT TESTED: {reason}")
    name = f"faceplane_test_{secrets.token_hex(6)}"
    admin = create_engine(f"{PG_URL}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{PG_URL}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def database_url(kind: str, data_dir: Path) -> Iterator[str]:
    """An empty database of `kind` (sqlite: the file the server uses in `data_dir`)."""
    if kind == "sqlite":
        data_dir.mkdir(parents=True, exist_ok=True)
        yield f"sqlite:///{data_dir / 'faceplane.db'}"
        return
    with throwaway_postgres() as url:
        yield url


def legacy_metadata(generation: str) -> MetaData:
    """The tables of a pre-Alembic release (one of GENERATIONS), with its schema_version."""
    webhooks = generation != "839d8ee"
    tenant, word = ("company_id", "company") if generation == "17ff2b7" else ("owner", "owner")
    md = MetaData()
    Table(
        "schema_version",
        md,
        Column("version", Integer, primary_key=True),
        Column("applied_at", Float, nullable=False),
    )
    tasks = Table(
        "tasks",
        md,
        Column("id", String(64), primary_key=True),
        Column(tenant, String(64), nullable=False),
        Column("operation", String(32), nullable=False),
        Column("status", String(16), nullable=False),
        Column("input_json", Text, nullable=False),
        Column("options_json", Text, nullable=False, default="{}"),
        Column("result_json", Text),
        Column("error_json", Text),
        Column("attempts", Integer, nullable=False, default=0),
        Column("max_attempts", Integer, nullable=False, default=3),
        Column("created_at", Float, nullable=False),
        Column("updated_at", Float, nullable=False),
        Column("started_at", Float),
        Column("finished_at", Float),
        Column("expires_at", Float, nullable=False),
        Column("lease_until", Float),
        Column("worker", String(64)),
        Column("cancel_requested", Boolean, nullable=False, default=False),
        Column("idempotency_key", String(200)),
        Column("batch_id", String(64)),
        Column("webhook_url", Text),
        Column("webhook_secret", String(128)),
        Column("webhook_state", String(16)),
        Column("webhook_next_at", Float),
        Column("purged", Boolean, nullable=False, default=False),
        UniqueConstraint(tenant, "idempotency_key", name=f"uq_tasks_{word}_idem"),
    )
    Index("ix_tasks_status_created", tasks.c.status, tasks.c.created_at)
    Index(f"ix_tasks_{word}_created", tasks.c[tenant], tasks.c.created_at)
    Index("ix_tasks_webhook", tasks.c.webhook_state, tasks.c.webhook_next_at)
    attempts = Table(
        "webhook_attempts",
        md,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("task_id", String(64), ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False),
        Column("attempt", Integer, nullable=False),
        Column("at", Float, nullable=False),
        Column("http_status", Integer),
        Column("error", Text),
        Column("duration_ms", Float),
    )
    Index("ix_webhook_attempts_task", attempts.c.task_id)
    Table(
        "collections",
        md,
        Column("id", String(64), primary_key=True),
        Column(tenant, String(64), nullable=False),
        Column("name", String(200), nullable=False),
        Column("kind", String(16), nullable=False),
        Column("model", String(64), nullable=False),
        Column("description", Text, nullable=False, default=""),
        Column("created_at", Float, nullable=False),
        Column("updated_at", Float, nullable=False),
        UniqueConstraint(tenant, "name", name=f"uq_collections_{word}_name"),
    )
    subjects = Table(
        "subjects",
        md,
        Column("id", String(64), primary_key=True),
        Column(
            "collection_id",
            String(64),
            ForeignKey("collections.id", ondelete="CASCADE"),
            nullable=False,
        ),
        Column("name", String(200), nullable=False),
        Column("external_id", String(200)),
        Column("metadata_json", Text, nullable=False, default="{}"),
        Column("created_at", Float, nullable=False),
        Column("updated_at", Float, nullable=False),
        UniqueConstraint("collection_id", "name", name="uq_subjects_collection_name"),
    )
    Index("ix_subjects_collection", subjects.c.collection_id, subjects.c.created_at)
    faces = Table(
        "faces",
        md,
        Column("seq", Integer, primary_key=True, autoincrement=True),
        Column("token", String(64), nullable=False, unique=True),
        Column(
            "collection_id",
            String(64),
            ForeignKey("collections.id", ondelete="CASCADE"),
            nullable=False,
        ),
        Column(
            "subject_id", String(64), ForeignKey("subjects.id", ondelete="CASCADE"), nullable=False
        ),
        Column("model", String(64), nullable=False),
        Column("embedding", LargeBinary, nullable=False),
        Column("quality_json", Text, nullable=False, default="{}"),
        Column("box_json", Text, nullable=False, default="{}"),
        Column("crop_key", String(300)),
        Column("created_at", Float, nullable=False),
    )
    Index("ix_faces_collection_seq", faces.c.collection_id, faces.c.seq)
    Index("ix_faces_subject", faces.c.subject_id)
    removals = Table(
        "face_removals",
        md,
        Column("seq", Integer, primary_key=True, autoincrement=True),
        Column("collection_id", String(64), nullable=False),
        Column("face_seq", Integer, nullable=False),
        Column("at", Float, nullable=False),
    )
    Index("ix_face_removals_collection_seq", removals.c.collection_id, removals.c.seq)
    Table(
        "companies",
        md,
        Column("id", String(64), primary_key=True),
        Column("name", String(200), nullable=False, unique=True),
        Column("created_at", Float, nullable=False),
    )
    Table(
        "users",
        md,
        Column("id", String(64), primary_key=True),
        Column(
            "company_id", String(64), ForeignKey("companies.id", ondelete="CASCADE"), nullable=False
        ),
        Column("email", String(320), nullable=False, unique=True),
        Column("password_hash", String(200), nullable=False),
        Column("role", String(16), nullable=False),
        Column("active", Boolean, nullable=False, default=True),
        Column("created_at", Float, nullable=False),
    )
    app_webhook = [Column("webhook_url", Text), Column("webhook_secret", String(128))]
    Table(
        "apps",
        md,
        Column("id", String(64), primary_key=True),
        Column(
            "company_id", String(64), ForeignKey("companies.id", ondelete="CASCADE"), nullable=False
        ),
        Column("user_id", String(64), ForeignKey("users.id", ondelete="SET NULL")),
        Column("name", String(200), nullable=False),
        Column("key_hash", String(64), nullable=False, unique=True),
        Column("key_sealed", LargeBinary, nullable=False),
        Column("key_prefix", String(16), nullable=False),
        Column("status", String(16), nullable=False),
        Column("expires_at", Float),
        Column("rate_limit", Integer, nullable=False),
        Column("quota", Integer),
        Column("created_at", Float, nullable=False),
        Column("rotated_at", Float),
        *(app_webhook if webhooks else []),
    )
    Table(
        "tokens",
        md,
        Column("hash", String(64), primary_key=True),
        Column("user_id", String(64), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        Column("kind", String(8), nullable=False),
        Column("expires_at", Float, nullable=False),
        Column("revoked", Boolean, nullable=False, default=False),
        Column("created_at", Float, nullable=False),
    )
    Table(
        "nonces",
        md,
        Column("app_id", String(64), primary_key=True),
        Column("nonce", String(128), primary_key=True),
        Column("expires_at", Float, nullable=False),
    )
    Table(
        "counters",
        md,
        Column("key", String(200), primary_key=True),
        Column("value", Integer, nullable=False),
        Column("expires_at", Float, nullable=False),
    )
    audit = Table(
        "audit_log",
        md,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("at", Float, nullable=False),
        Column("company_id", String(64)),
        Column("actor", String(200), nullable=False),
        Column("action", String(200), nullable=False),
        Column("resource", String(500), nullable=False),
        Column("status", Integer),
        Column("ip", String(64)),
    )
    Index("ix_audit_company_at", audit.c.company_id, audit.c.at)
    return md


def make_legacy_database(engine: Engine, generation: str) -> MetaData:
    """Build the schema of a pre-Alembic release as its `migrate()` did; return its tables."""
    md = legacy_metadata(generation)
    with engine.begin() as conn:
        md.create_all(conn)
        conn.execute(md.tables["schema_version"].insert().values(version=1, applied_at=time.time()))
    return md
