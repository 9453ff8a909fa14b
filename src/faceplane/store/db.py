"""The metadata database: SQLAlchemy Core tables and engine setup.

SQLite (WAL) is the embedded default; PostgreSQL is for the distributed mode. One schema,
whose history is the Alembic revisions in `migrations/` (applied on open by `schema`): a
change to these tables comes with a new revision.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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
    event,
)
from sqlalchemy.engine import Connection, make_url

from faceplane.store.modes import FILE_MODE, make_private

metadata = MetaData()

tasks = Table(
    "tasks",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("company_id", String(64), nullable=False),
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
    Column("request_hash", String(64)),  # sha256 of the canonical request under that key
    Column("batch_id", String(64)),
    Column("webhook_url", Text),
    Column("webhook_secret", String(128)),
    Column("webhook_state", String(16)),  # None | pending | delivered | failed
    Column("webhook_next_at", Float),
    # The number of the delivery attempt last claimed (recorded at claim time, so a claim
    # after a crash is the next attempt, never the same one again).
    Column("webhook_attempt", Integer),
    Column("purged", Boolean, nullable=False, default=False),
    # The route family that created the task (native, ailab, oz, photo); NULL: stored before
    # it was recorded. Pho.to's getresult serves only tasks Pho.to's addtask created.
    Column("origin", String(16)),
    UniqueConstraint("company_id", "idempotency_key", name="uq_tasks_company_idem"),
)
Index("ix_tasks_status_created", tasks.c.status, tasks.c.created_at)
Index("ix_tasks_company_created", tasks.c.company_id, tasks.c.created_at)
# The per-company queue cap counts a company's queued tasks on every submit.
Index("ix_tasks_company_status", tasks.c.company_id, tasks.c.status)
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

collections = Table(
    "collections",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("company_id", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    Column("kind", String(16), nullable=False),  # gallery | blacklist
    Column("model", String(64), nullable=False),  # the embedder that fills it
    Column("description", Text, nullable=False, default=""),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    UniqueConstraint("company_id", "name", name="uq_collections_company_name"),
)

subjects = Table(
    "subjects",
    metadata,
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
    metadata,
    # seq is the vector index key: an integer that only grows, so an index can catch up.
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("token", String(64), nullable=False, unique=True),
    Column(
        "collection_id",
        String(64),
        ForeignKey("collections.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("subject_id", String(64), ForeignKey("subjects.id", ondelete="CASCADE"), nullable=False),
    Column("model", String(64), nullable=False),
    Column("embedding", LargeBinary, nullable=False),  # float32 little-endian, L2-normalised
    Column("quality_json", Text, nullable=False, default="{}"),
    Column("box_json", Text, nullable=False, default="{}"),
    Column("crop_key", String(300)),
    Column("created_at", Float, nullable=False),
)
Index("ix_faces_collection_seq", faces.c.collection_id, faces.c.seq)
Index("ix_faces_subject", faces.c.subject_id)

# Every removal of a face from a collection, in order: indexes in other processes replay
# these to drop vectors they still hold.
face_removals = Table(
    "face_removals",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("collection_id", String(64), nullable=False),
    Column("face_seq", Integer, nullable=False),
    Column("at", Float, nullable=False),
)
Index("ix_face_removals_collection_seq", face_removals.c.collection_id, face_removals.c.seq)

# ---- accounts, access and accounting ------------------------------------------------------

companies = Table(
    "companies",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("id", String(64), primary_key=True),
    Column(
        "company_id", String(64), ForeignKey("companies.id", ondelete="CASCADE"), nullable=False
    ),
    Column("email", String(320), nullable=False, unique=True),
    Column("password_hash", String(200), nullable=False),  # argon2id
    Column("role", String(16), nullable=False),  # admin | operator | client
    Column("active", Boolean, nullable=False, default=True),
    Column("created_at", Float, nullable=False),
    # Caps an admin set on the user: its token's requests and its apps' count against them.
    Column("rate_limit", Integer),  # requests per rate window; None = the default
    Column("quota", Integer),  # credits per quota period; None = unlimited
)

apps = Table(
    "apps",
    metadata,
    Column("id", String(64), primary_key=True),  # the public APP_ID
    Column(
        "company_id", String(64), ForeignKey("companies.id", ondelete="CASCADE"), nullable=False
    ),
    Column("user_id", String(64), ForeignKey("users.id", ondelete="SET NULL")),
    Column("name", String(200), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),  # sha256 of the KEY
    # The KEY sealed with the server secret: HMAC signatures (SIGN_DATA) cannot be checked
    # from a hash, so this is the only form in which the key itself is kept.
    Column("key_sealed", LargeBinary, nullable=False),
    Column("key_prefix", String(16), nullable=False),
    Column("status", String(16), nullable=False),  # active | deactivated
    Column("expires_at", Float),
    Column("rate_limit", Integer, nullable=False),  # requests per rate window
    Column("quota", Integer),  # credits per quota period; None = unlimited
    Column("created_at", Float, nullable=False),
    Column("rotated_at", Float),
    # The app's default webhook, for its tasks that name none.
    Column("webhook_url", Text),
    Column("webhook_secret", String(128)),
)

tokens = Table(
    "tokens",
    metadata,
    Column("hash", String(64), primary_key=True),  # sha256 of the token
    Column("user_id", String(64), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(8), nullable=False),  # access | refresh
    Column("expires_at", Float, nullable=False),
    Column("revoked", Boolean, nullable=False, default=False),
    Column("created_at", Float, nullable=False),
    # Every token descending from one login (revision 0009); none for older tokens.
    Column("family", String(32), nullable=True),
)
Index("ix_tokens_family", tokens.c.family)

nonces = Table(
    "nonces",
    metadata,
    Column("app_id", String(64), primary_key=True),
    Column("nonce", String(128), primary_key=True),
    Column("expires_at", Float, nullable=False),
)

# Every Pho.to SIGN_DATA accepted, for as long as the key that signed it: Pho.to signs DATA
# alone, with no time or nonce, so a signature is only ever good once per key. Rotating the key
# forgets them (the new key signs differently); deleting the app deletes them.
data_signatures = Table(
    "data_signatures",
    metadata,
    Column("app_id", String(64), ForeignKey("apps.id", ondelete="CASCADE"), primary_key=True),
    Column("digest", String(64), primary_key=True),  # sha256 hex of the SIGN_DATA
    Column("created_at", Float, nullable=False),
)

counters = Table(
    "counters",
    metadata,
    Column("key", String(200), primary_key=True),  # e.g. rate:<app>:<window> or quota:...
    Column("value", Integer, nullable=False),
    Column("expires_at", Float, nullable=False),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("company_id", String(64)),
    Column("actor", String(200), nullable=False),  # user:<id> | app:<id> | cli
    Column("action", String(200), nullable=False),
    Column("resource", String(500), nullable=False),
    Column("status", Integer),
    Column("ip", String(64)),
)
Index("ix_audit_company_at", audit_log.c.company_id, audit_log.c.at)

# ---- analysis sessions (Oz folders; liveness sessions) ---------------------------------------
# A session holds media and the analyses run on them (services/sessions.py). An analysis is a
# task: its state and verdict are read from the task row, never stored twice here.

analysis_sessions = Table(
    "analysis_sessions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("company_id", String(64), nullable=False),
    Column("creator", String(200), nullable=False),  # user:<id> | app:<id> | cli
    Column("tags_json", Text, nullable=False, default="[]"),
    Column("metadata_json", Text, nullable=False, default="{}"),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)
Index(
    "ix_analysis_sessions_company_created",
    analysis_sessions.c.company_id,
    analysis_sessions.c.created_at,
)

session_media = Table(
    "session_media",
    metadata,
    Column("id", String(64), primary_key=True),
    Column(
        "session_id",
        String(64),
        ForeignKey("analysis_sessions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("company_id", String(64), nullable=False),
    Column("position", Integer, nullable=False),  # upload order within the session
    Column("kind", String(16), nullable=False),  # photo | video
    Column("tags_json", Text, nullable=False, default="[]"),  # e.g. ["photo_selfie"]
    Column("metadata_json", Text, nullable=False, default="{}"),
    Column("blob_key", String(300), nullable=False),
    Column("original_name", String(255), nullable=False),
    Column("size_bytes", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
)
Index("ix_session_media_session", session_media.c.session_id, session_media.c.position)

session_analyses = Table(
    "session_analyses",
    metadata,
    Column("id", String(64), primary_key=True),
    Column(
        "session_id",
        String(64),
        ForeignKey("analysis_sessions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("company_id", String(64), nullable=False),
    Column("type", String(32), nullable=False),  # BIOMETRY | COLLECTION | QUALITY | ...
    Column("task_id", String(64), nullable=False),
    # The media it runs on, in the order of the task's inputs ({input name: media id}).
    Column("inputs_json", Text, nullable=False, default="{}"),
    Column("params_json", Text, nullable=False, default="{}"),
    Column("created_at", Float, nullable=False),
)
Index("ix_session_analyses_session", session_analyses.c.session_id, session_analyses.c.created_at)
Index("ix_session_analyses_task", session_analyses.c.task_id)


def sqlite_url(data_dir: Path) -> str:
    """The default embedded database in the data folder."""
    return f"sqlite:///{data_dir / 'faceplane.db'}"


def make_engine(url: str) -> Engine:
    """An engine; SQLite gets WAL, a busy timeout and foreign keys on every connection."""
    if url.startswith("sqlite"):
        _private_sqlite_file(url)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            # SQLAlchemy, not the driver, starts transactions (see `_sqlite_begin`).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):  # type: ignore[no-untyped-def]
            # A deferred transaction that reads, then writes, fails at once with "database is
            # locked" when another process wrote in between (SQLite cannot wait there). Write
            # transactions therefore take the write lock first, and wait their turn instead.
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.info.get("write") else "BEGIN")

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


def _private_sqlite_file(url: str) -> None:
    """Create the SQLite file 0600 before SQLite does: SQLite would make it 0644, and it gives
    its -wal, -shm and -journal files the database file's mode. An existing one is tightened."""
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    if not path.parent.is_dir():
        return  # SQLite reports the missing folder itself
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE)  # an empty file is an empty db
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
    for suffix in ("-wal", "-shm", "-journal"):
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            make_private(companion)


@contextmanager
def write_tx(engine: Engine) -> Iterator[Connection]:
    """A write transaction: on SQLite it holds the write lock from its first statement."""
    with engine.connect() as conn:
        conn.info["write"] = True
        try:
            with conn.begin():
                yield conn
        finally:
            conn.info.pop("write", None)
