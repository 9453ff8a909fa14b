"""store.db and the Store itself, called directly: the SQLite connection settings, write
transactions that commit or roll back whole, which database a server uses, and its secret."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, insert, select

from faceplane.settings import Settings
from faceplane.store import Store, database_url
from faceplane.store.db import collections, make_engine, sqlite_url, subjects, write_tx
from faceplane.store.schema import current_revision, head_revision


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(Settings(data_dir=tmp_path / "data"))
    yield s
    s.db.dispose()


def add_collection(engine: Engine, cid: str) -> None:
    now = time.time()
    with write_tx(engine) as conn:
        conn.execute(
            insert(collections).values(
                id=cid,
                company_id="c1",
                name=cid,
                kind="gallery",
                model="space",
                description="",
                created_at=now,
                updated_at=now,
            )
        )


def count(engine: Engine, table: object) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def test_sqlite_connections_use_wal_foreign_keys_and_wait_for_the_lock(store: Store) -> None:
    with store.db.connect() as conn:
        pragma = {
            name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in ("journal_mode", "foreign_keys", "busy_timeout")
        }
    assert pragma == {"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": 30000}


def test_foreign_keys_cascade_a_collection_to_its_subjects(store: Store) -> None:
    add_collection(store.db, "col1")
    now = time.time()
    with write_tx(store.db) as conn:
        conn.execute(
            insert(subjects).values(
                id="s1",
                collection_id="col1",
                name="ann",
                metadata_json="{}",
                created_at=now,
                updated_at=now,
            )
        )
    with write_tx(store.db) as conn:
        conn.execute(collections.delete().where(collections.c.id == "col1"))
    assert count(store.db, subjects) == 0


def test_a_write_transaction_commits_whole_or_not_at_all(store: Store) -> None:
    add_collection(store.db, "committed-before")
    with pytest.raises(RuntimeError), write_tx(store.db) as conn:
        conn.execute(
            insert(collections).values(
                id="rolled-back",
                company_id="c1",
                name="rolled-back",
                kind="gallery",
                model="space",
                description="",
                created_at=0.0,
                updated_at=0.0,
            )
        )
        conn.execute(collections.delete().where(collections.c.id == "committed-before"))
        raise RuntimeError("the work failed")
    with store.db.connect() as conn:
        ids = set(conn.execute(select(collections.c.id)).scalars())
        assert "write" not in conn.info  # the next user of the connection reads, not writes
    assert ids == {"committed-before"}  # neither the insert nor the delete happened


def test_the_database_is_the_configured_url_else_the_file_in_the_data_folder(
    tmp_path: Path,
) -> None:
    assert database_url(Settings(data_dir=tmp_path)) == sqlite_url(tmp_path)
    assert sqlite_url(tmp_path) == f"sqlite:///{tmp_path / 'faceplane.db'}"
    url = "postgresql+psycopg://someone@db.example/faceplane"
    assert database_url(Settings(data_dir=tmp_path, database_url=url)) == url


def test_an_opened_store_is_at_the_newest_schema(store: Store) -> None:
    assert current_revision(store.db) == head_revision()


def test_the_generated_secret_is_made_once_and_kept(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    first = Store.open(settings)
    again = Store.open(settings)
    assert first.secret == again.secret and len(first.secret) == 64
    assert (tmp_path / "data" / "secret.key").read_text().strip().encode() == first.secret
    other = Store.open(Settings(data_dir=tmp_path / "other"))
    assert other.secret != first.secret
    for s in (first, again, other):
        s.db.dispose()


def test_a_configured_secret_wins_over_the_file(tmp_path: Path) -> None:
    s = Store.open(Settings(data_dir=tmp_path, secret_key="configured-secret-of-the-server"))
    assert s.secret == b"configured-secret-of-the-server"
    s.db.dispose()


def test_make_engine_gives_postgresql_a_checked_pool() -> None:
    engine = make_engine("postgresql+psycopg://someone@127.0.0.1:1/none")
    assert engine.pool._pre_ping is True  # type: ignore[attr-defined]
    engine.dispose()
