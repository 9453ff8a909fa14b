"""The metadata database: SQLAlchemy Core tables, engine setup, and schema migrations.

SQLite (WAL) is the embedded default; PostgreSQL is for the distributed mode. One schema.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlalchemy import (
    Boolean,
    Column,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    select,
)
from sqlalchemy.engine import Connection

metadata = MetaData()

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True),
    Column("applied_at", Float, nullable=False),
)

tasks = Table(
    "tasks",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("owner", String(64), nullable=False, default="default"),
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
    Column("webhook_state", String(16)),  # None | pending | delivered | failed
    Column("webhook_next_at", Float),
    Column("purged", Boolean, nullable=False, default=False),
    UniqueConstraint("owner", "idempotency_key", name="uq_tasks_owner_idem"),
)
Index("ix_tasks_status_created", tasks.c.status, tasks.c.created_at)
Index("ix_tasks_owner_created", tasks.c.owner, tasks.c.created_at)
Index("ix_tasks_webhook", tasks.c.webhook_state, tasks.c.webhook_next_at)

webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("task_id", String(64), ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("at", Float, nullable=False),
    Column("http_status", Integer),
    Column("error", Text),
    Column("duration_ms", Float),
)
Index("ix_webhook_attempts_task", webhook_attempts.c.task_id)

# Ordered migrations after the initial schema; each takes a connection inside a transaction.
MIGRATIONS: list[Callable[[Connection], None]] = []
SCHEMA_VERSION = 1 + len(MIGRATIONS)


def sqlite_url(data_dir: Path) -> str:
    """The default embedded database in the data folder."""
    return f"sqlite:///{data_dir / 'faceplane.db'}"


def make_engine(url: str) -> Engine:
    """An engine; SQLite gets WAL, a busy timeout and foreign keys on every connection."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


def migrate(engine: Engine) -> int:
    """Create the schema if needed and apply pending migrations; return the version."""
    import time

    metadata.create_all(engine)
    with engine.begin() as conn:
        current = conn.execute(
            select(schema_version.c.version).order_by(schema_version.c.version.desc()).limit(1)
        ).scalar()
        if current is None:
            conn.execute(
                schema_version.insert().values(version=SCHEMA_VERSION, applied_at=time.time())
            )
            return SCHEMA_VERSION
        for version in range(current + 1, SCHEMA_VERSION + 1):
            MIGRATIONS[version - 2](conn)
            conn.execute(schema_version.insert().values(version=version, applied_at=time.time()))
    return SCHEMA_VERSION
