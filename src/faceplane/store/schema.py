"""Schema history: Alembic revisions in `migrations/`, applied on open under a lock.

Every process that opens the store (servers, local and Celery workers, the CLI) upgrades the
database to the newest revision first. Several of them may start together on one empty
database, so the upgrade runs in one transaction that holds a lock: PostgreSQL's advisory
lock, SQLite's write lock (BEGIN IMMEDIATE). The others wait, then find nothing to do.

Databases made before Alembic carry a hand-made `schema_version` table (always version 1)
and no `alembic_version`: they are recognised by their columns, stamped with the revision
they match, and upgraded from there.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.engine import Connection

from faceplane.errors import Err, FaceplaneError

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
MIGRATION_LOCK = 0x46414345  # "FACE": the PostgreSQL advisory lock held while migrating
# How long a process waits for another one's SQLite migration (the usual busy timeout,
# 30 s, is too short for a table copy on a big database).
SQLITE_MIGRATION_WAIT_MS = 600_000


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration, without alembic.ini: the packaged scripts, this connection."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def script_directory() -> ScriptDirectory:
    """The revisions shipped with this version of Faceplane."""
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    """The newest revision (the chain is linear: more than one head is an error)."""
    head = script_directory().get_current_head()
    assert head is not None, "no migrations shipped"
    return head


def schema_history() -> list[tuple[str, str]]:
    """Every revision as (id, message), oldest first."""
    revisions = list(script_directory().walk_revisions())
    return [(s.revision, (s.doc or "").strip()) for s in reversed(revisions)]


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at; None when it has no Alembic version (yet)."""
    with engine.connect() as conn:
        return _current(conn)


def legacy_revision(engine: Engine) -> str | None:
    """The revision a database made before Alembic matches; None for any other database."""
    with engine.connect() as conn:
        return _legacy_revision(conn)


def upgrade_schema(engine: Engine) -> tuple[str | None, str]:
    """Bring the database to the newest revision under the migration lock.

    Returns (the revision it was at, or None for an empty database; the head). A database
    made before Alembic counts as being at the revision it is stamped with.
    """
    script = script_directory()
    head = script.get_current_head()
    assert head is not None, "no migrations shipped"
    if current_revision(engine) == head:  # the usual case: no lock, no wait
        return head, head
    with _migration_tx(engine) as conn:
        before = _current(conn)  # again: another process may have migrated meanwhile
        if before is None:
            before = _legacy_revision(conn)
            if before is not None:
                _adopt_legacy(conn, before)
        elif before not in {s.revision for s in script.walk_revisions()}:
            raise FaceplaneError(
                Err.DATABASE_ERROR,
                f"The database is at schema revision {before}, which this version of "
                f"Faceplane does not know (its newest is {head}): it was upgraded by a newer "
                "version.",
                revision=before,
                head=head,
            )
        if before != head:
            command.upgrade(alembic_config(conn), "head")
    return before, head


def _current(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def _legacy_revision(conn: Connection) -> str | None:
    """0001, 0002 or 0003 for a pre-Alembic database (by its columns), else None."""
    inspector = sa.inspect(conn)
    tables = set(inspector.get_table_names())
    if "alembic_version" in tables or "schema_version" not in tables:
        return None
    if "companies" not in tables:
        raise FaceplaneError(
            Err.DATABASE_ERROR,
            "The database was made before accounts existed (before commit 839d8ee); this "
            "version of Faceplane cannot upgrade it.",
        )
    if "webhook_url" not in {c["name"] for c in inspector.get_columns("apps")}:
        return "0001"  # 839d8ee .. adfdd3f^: no app webhooks yet
    if "owner" in {c["name"] for c in inspector.get_columns("tasks")}:
        return "0002"  # adfdd3f .. 17ff2b7^: app webhooks, tenant column still `owner`
    return "0003"  # 17ff2b7 (create_all of the company_id schema) until Alembic


def _adopt_legacy(conn: Connection, revision: str) -> None:
    """Stamp a pre-Alembic database with the revision it matches."""
    if revision == "0003":
        # Revision 0003 drops schema_version; a database already past it in every other
        # way only needs that part done.
        conn.execute(sa.text("DROP TABLE schema_version"))
    command.stamp(alembic_config(conn), revision)


@contextmanager
def _migration_tx(engine: Engine) -> Iterator[Connection]:
    """One transaction holding the migration lock; every migration step runs inside it."""
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        driver = conn.connection.driver_connection
        assert driver is not None
        if sqlite:
            # SQLite alters a table by copying it and dropping the original: with foreign
            # keys on, that drop would cascade-delete every subject and face of a collection.
            # The pragma does nothing inside a transaction, so it is set before BEGIN.
            driver.execute("PRAGMA foreign_keys=OFF")
            driver.execute(f"PRAGMA busy_timeout={SQLITE_MIGRATION_WAIT_MS}")
        conn.info["write"] = True  # SQLite: BEGIN IMMEDIATE, the write lock, before reading
        try:
            with conn.begin():
                if conn.dialect.name == "postgresql":
                    conn.execute(
                        sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK}
                    )
                yield conn
                if sqlite:
                    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise FaceplaneError(
                            Err.DATABASE_ERROR,
                            "A migration left rows whose references point nowhere.",
                            rows=[list(r) for r in broken[:10]],
                        )
        finally:
            conn.info.pop("write", None)
            if sqlite:
                # Back to what make_engine set on every connection, before it returns to the pool.
                driver.execute("PRAGMA foreign_keys=ON")
                driver.execute("PRAGMA busy_timeout=30000")
