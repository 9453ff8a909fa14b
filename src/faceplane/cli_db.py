"""`faceplane db upgrade | current | history`: the schema revision of the configured database.

The database is FACEPLANE_DATABASE_URL, else the SQLite file in FACEPLANE_DATA_DIR. Servers
and workers upgrade it themselves when they open it; these commands let an operator look
first, or upgrade ahead of a rollout.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError

from faceplane.client import cli_errors
from faceplane.errors import Err, FaceplaneError
from faceplane.settings import Settings
from faceplane.store import database_url
from faceplane.store.db import make_engine
from faceplane.store.schema import (
    current_revision,
    head_revision,
    legacy_revision,
    schema_history,
    upgrade_schema,
)


def _engine(settings: Settings, create: bool) -> Engine | None:
    """The configured database; None when it is an SQLite file that does not exist yet."""
    url = database_url(settings)
    if url.startswith("sqlite"):
        path = Path(make_url(url).database or "")
        if not create and not path.is_file():
            return None  # connecting would create the file
        path.parent.mkdir(parents=True, exist_ok=True)
    return make_engine(url)


def _describe(engine: Engine | None) -> str:
    """The revision line `db current` prints."""
    head = head_revision()
    current = current_revision(engine) if engine is not None else None
    if current == head:
        return f"{current} (head)"
    if current is not None:
        return f"{current} (head is {head}: run `faceplane db upgrade`)"
    legacy = legacy_revision(engine) if engine is not None else None
    if legacy is not None:
        return (
            f"pre-Alembic schema (schema_version 1), matching {legacy} "
            f"(head is {head}: run `faceplane db upgrade`)"
        )
    return "not initialised (empty database: `faceplane db upgrade` or the first start creates it)"


def db_current(settings: Settings) -> int:
    """Print the revision the database is at."""
    engine = _engine(settings, create=False)
    try:
        print(_describe(engine))
    finally:
        if engine is not None:
            engine.dispose()
    return 0


def db_upgrade(settings: Settings) -> int:
    """Upgrade the database to the newest revision and say what was applied."""
    engine = _engine(settings, create=True)
    assert engine is not None
    try:
        before, head = upgrade_schema(engine)
    finally:
        engine.dispose()
    if before == head:
        print(f"already at {head} (head)")
        return 0
    ids = [rev for rev, _ in schema_history()]
    first = 0 if before is None else ids.index(before) + 1
    for rev, message in schema_history()[first:]:
        print(f"applied {rev}  {message}")
    print(f"now at {head} (head)")
    return 0


def db_history(settings: Settings) -> int:
    """List the revisions this version ships, oldest first."""
    history = schema_history()
    for i, (rev, message) in enumerate(history):
        print(f"{rev}  {message}{'  (head)' if i == len(history) - 1 else ''}")
    return 0


ACTIONS: dict[str, Callable[[Settings], int]] = {
    "upgrade": db_upgrade,
    "current": db_current,
    "history": db_history,
}


@cli_errors
def run_db(args: argparse.Namespace, settings: Settings) -> int:
    """Dispatch `faceplane db <action>`."""
    try:
        return ACTIONS[args.action](settings)
    except SQLAlchemyError as exc:
        # Most often an unreachable server or a wrong URL: say so without a traceback.
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise FaceplaneError(Err.DATABASE_ERROR, f"The database failed: {reason}") from None


def add_db_parser(sub: argparse._SubParsersAction) -> None:
    """Add `db` to the main parser."""
    d = sub.add_parser("db", help="schema revision of the database: upgrade, current, history")
    d.add_argument("action", choices=tuple(ACTIONS))
    d.set_defaults(fn=run_db)
