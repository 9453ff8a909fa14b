"""Fixtures of the task unit tests: a store on SQLite, and on PostgreSQL when it answers."""

from __future__ import annotations

import functools
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from databases import throwaway_postgres
from faceplane.settings import Settings
from faceplane.store import Store
from faceplane.store.db import tasks, webhook_attempts, write_tx


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The database URL of one test module: SQLite in a temporary folder, or PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'faceplane.db'}"
        return
    with throwaway_postgres() as url:
        yield url


@pytest.fixture
def store(database_url: str, tmp_path: Path) -> Iterator[Store]:
    """A store on the module's database (blobs and secret in this test's folder)."""
    s = Store.open(Settings(data_dir=tmp_path, database_url=database_url))
    clear_tasks(s)
    yield s
    s.db.dispose()


def clear_tasks(store: Store) -> None:
    """Empty the task tables: the module's database is shared by its tests."""
    with write_tx(store.db) as conn:
        conn.execute(webhook_attempts.delete())
        conn.execute(tasks.delete())


def _put_task(store: Store, status: str = "queued", **overrides: Any) -> str:
    """Insert a task row in `status` straight into the table (a fixture, not an API call)."""
    now = time.time()
    task_id = secrets.token_hex(16)
    row = {
        "id": task_id,
        "company_id": "c1",
        "operation": "detect",
        "status": status,
        "input_json": "{}",
        "options_json": "{}",
        "attempts": 0,
        "max_attempts": 3,
        "created_at": now,
        "updated_at": now,
        "expires_at": now + 3600,
        "cancel_requested": False,
        "purged": False,
        **overrides,
    }
    with write_tx(store.db) as conn:
        conn.execute(tasks.insert().values(**row))
    return task_id


def _task_row(store: Store, task_id: str) -> dict[str, Any]:
    """A task's row as it is in the database now."""
    from sqlalchemy import select

    with store.db.connect() as conn:
        return dict(conn.execute(select(tasks).where(tasks.c.id == task_id)).mappings().one())


@pytest.fixture
def put_task(store: Store) -> Callable[..., str]:
    """`put_task(status, **columns)` inserts a task row on the test's store; returns its id."""
    return functools.partial(_put_task, store)


@pytest.fixture
def task_row(store: Store) -> Callable[[str], dict[str, Any]]:
    """`task_row(id)`: the row as it is in the database now."""
    return functools.partial(_task_row, store)
