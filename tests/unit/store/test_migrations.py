"""Schema history: the Alembic revisions, the upgrade on open, and `faceplane db`.

Every database test runs on SQLite and on a throw-away PostgreSQL database (skipped, loudly,
when PostgreSQL does not answer).
"""

from __future__ import annotations

import multiprocessing as mp
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from databases import GENERATIONS, database_url, legacy_metadata, make_legacy_database
from faceplane.cli import main
from faceplane.errors import Err, FaceplaneError
from faceplane.settings import Settings
from faceplane.store import Store
from faceplane.store.db import make_engine, metadata, write_tx
from faceplane.store.schema import (
    MIGRATIONS_DIR,
    alembic_config,
    current_revision,
    head_revision,
    schema_history,
    script_directory,
    upgrade_schema,
)

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database, SQLite or PostgreSQL."""
    with database_url(request.param, tmp_path / "data") as u:
        yield u


@pytest.fixture
def engine(url: str) -> Iterator[sa.Engine]:
    """An engine on it, made the way the store makes one."""
    e = make_engine(url)
    yield e
    e.dispose()


def settings_for(url: str, data_dir: Path) -> Settings:
    """Server settings on this database (SQLite: the file in the data folder)."""
    return Settings(data_dir=data_dir, database_url=None if url.startswith("sqlite") else url)


def diff(engine: sa.Engine, md: sa.MetaData) -> list[Any]:
    """What autogenerate would change to make the database match `md` (nothing, ideally)."""
    with engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), md)


def upgrade_to(engine: sa.Engine, revision: str) -> None:
    """Run the migrations up to `revision` on the engine."""
    with write_tx(engine) as conn:
        command.upgrade(alembic_config(conn), revision)


# ---- the revisions ---------------------------------------------------------------------------


def test_revisions_form_one_chain_from_0001() -> None:
    revisions = list(reversed(list(script_directory().walk_revisions())))
    ids = [s.revision for s in revisions]
    assert ids[:3] == ["0001", "0002", "0003"]
    assert ids == [f"{i:04d}" for i in range(1, len(ids) + 1)]
    assert [s.down_revision for s in revisions] == [None, *ids[:-1]]
    assert head_revision() == ids[-1]
    assert all(message for _, message in schema_history())


def test_every_revision_file_is_named_after_its_id() -> None:
    files = sorted(p.name for p in (MIGRATIONS_DIR / "versions").glob("[0-9]*.py"))
    assert [f[:4] for f in files] == [rev for rev, _ in schema_history()]


def test_revision_0001_creates_exactly_the_sqlite_tables_of_839d8ee(tmp_path: Path) -> None:
    migrated = make_engine(f"sqlite:///{tmp_path / 'a.db'}")
    upgrade_to(migrated, "0001")
    migrated.dispose()
    legacy = make_engine(f"sqlite:///{tmp_path / 'b.db'}")
    make_legacy_database(legacy, "839d8ee")
    legacy.dispose()

    def ddl(path: Path) -> list[tuple[str, str]]:
        with sqlite3.connect(path) as con:
            rows = con.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL")
            return sorted(r for r in rows if not r[0].startswith("alembic"))

    assert ddl(tmp_path / "a.db") == ddl(tmp_path / "b.db")


@pytest.mark.parametrize(("revision", "generation"), [("0001", "839d8ee"), ("0002", "adfdd3f")])
def test_early_revisions_are_the_schemas_of_their_commits(
    engine: sa.Engine, revision: str, generation: str
) -> None:
    upgrade_to(engine, revision)
    assert diff(engine, legacy_metadata(generation)) == []


def test_the_upgraded_schema_equals_the_tables_in_db_py(engine: sa.Engine) -> None:
    upgrade_schema(engine)
    assert diff(engine, metadata) == []
    assert "schema_version" not in sa.inspect(engine).get_table_names()


def test_downgrade_to_0001_and_upgrade_again_round_trips(engine: sa.Engine) -> None:
    upgrade_schema(engine)
    with write_tx(engine) as conn:
        command.downgrade(alembic_config(conn), "0001")
    assert diff(engine, legacy_metadata("839d8ee")) == []
    upgrade_schema(engine)
    assert diff(engine, metadata) == []


def test_renaming_the_tenant_column_keeps_every_row_that_references_the_table(
    engine: sa.Engine,
) -> None:
    # SQLite alters a table by copying it and dropping the original; with foreign keys on,
    # that drop would cascade-delete the subjects, faces and webhook attempts.
    upgrade_to(engine, "0002")
    now = time.time()
    task = {"id": "t1", "owner": "c1", "operation": "detect", "status": "succeeded"}
    with write_tx(engine) as conn:
        conn.execute(
            sa.text(
                "INSERT INTO tasks (id, owner, operation, status, input_json, options_json, "
                "attempts, max_attempts, created_at, updated_at, expires_at, cancel_requested, "
                "purged) VALUES (:id, :owner, :operation, :status, '{}', '{}', 1, 3, :now, :now, "
                ":now, false, false)"
            ),
            {**task, "now": now},
        )
        conn.execute(
            sa.text("INSERT INTO webhook_attempts (task_id, attempt, at) VALUES ('t1', 1, :now)"),
            {"now": now},
        )
        conn.execute(
            sa.text(
                "INSERT INTO collections (id, owner, name, kind, model, description, created_at, "
                "updated_at) VALUES ('k1', 'c1', 'staff', 'gallery', 'm', '', :now, :now)"
            ),
            {"now": now},
        )
        conn.execute(
            sa.text(
                "INSERT INTO subjects (id, collection_id, name, metadata_json, created_at, "
                "updated_at) VALUES ('s1', 'k1', 'ann', '{}', :now, :now)"
            ),
            {"now": now},
        )
        conn.execute(
            sa.text(
                "INSERT INTO faces (token, collection_id, subject_id, model, embedding, "
                "quality_json, box_json, created_at) VALUES ('f1', 'k1', 's1', 'm', :e, '{}', "
                "'{}', :now)"
            ),
            {"e": b"\0" * 8, "now": now},
        )
    upgrade_schema(engine)
    with engine.connect() as conn:
        counts = {
            t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()
            for t in ("tasks", "webhook_attempts", "collections", "subjects", "faces")
        }
        owners = conn.execute(
            sa.text("SELECT t.company_id, c.company_id FROM tasks t, collections c")
        ).one()
    assert counts == dict.fromkeys(counts, 1)
    assert tuple(owners) == ("c1", "c1")
    if engine.dialect.name == "sqlite":  # the pool's connections have foreign keys on again
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1


# ---- the upgrade on open ---------------------------------------------------------------------


def test_opening_an_empty_database_creates_the_head_schema(url: str, tmp_path: Path) -> None:
    store = Store.open(settings_for(url, tmp_path / "data"))
    assert current_revision(store.db) == head_revision()
    assert upgrade_schema(store.db) == (head_revision(), head_revision())  # nothing left
    store.db.dispose()


@pytest.mark.parametrize(
    ("generation", "stamped"), list(zip(GENERATIONS, ["0001", "0002", "0003"], strict=True))
)
def test_a_pre_alembic_database_is_stamped_by_its_columns_then_upgraded(
    engine: sa.Engine, generation: str, stamped: str
) -> None:
    make_legacy_database(engine, generation)
    assert current_revision(engine) is None
    assert upgrade_schema(engine) == (stamped, head_revision())
    assert current_revision(engine) == head_revision()
    assert diff(engine, metadata) == []


def test_a_database_from_a_newer_version_is_a_clear_error(engine: sa.Engine) -> None:
    upgrade_schema(engine)
    with write_tx(engine) as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(FaceplaneError) as caught:
        upgrade_schema(engine)
    assert caught.value.err is Err.DATABASE_ERROR and "9999" in caught.value.message


def test_a_database_from_before_accounts_is_a_clear_error(engine: sa.Engine) -> None:
    md = legacy_metadata("839d8ee")
    for name in ("apps", "tokens", "users", "companies"):
        md.remove(md.tables[name])
    with engine.begin() as conn:
        md.create_all(conn)
        conn.execute(md.tables["schema_version"].insert().values(version=1, applied_at=0.0))
    with pytest.raises(FaceplaneError, match="before accounts"):
        upgrade_schema(engine)


def _open_store(url: str, data_dir: str, start: Any, out: Any) -> None:
    """Wait for the others, then open the store on the empty database; report the revision."""
    try:
        start.wait(60)
        store = Store.open(settings_for(url, Path(data_dir)))
        out.put(current_revision(store.db))
    except BaseException as exc:
        out.put(f"{type(exc).__name__}: {exc}")
        raise


def test_processes_opening_one_empty_database_together_all_succeed(
    url: str, tmp_path: Path
) -> None:
    n = 3
    ctx = mp.get_context("spawn")
    start, out = ctx.Barrier(n), ctx.Queue()
    procs = [
        ctx.Process(target=_open_store, args=(url, str(tmp_path / "data"), start, out))
        for _ in range(n)
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(60)
    assert results == [head_revision()] * n
    engine = make_engine(url)
    assert diff(engine, metadata) == []
    engine.dispose()


# ---- faceplane db ----------------------------------------------------------------------------


@pytest.fixture
def db_env(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """FACEPLANE_* variables naming the database, as an operator sets them."""
    monkeypatch.setenv("FACEPLANE_DATA_DIR", str(tmp_path / "data"))
    if not url.startswith("sqlite"):
        monkeypatch.setenv("FACEPLANE_DATABASE_URL", url)
    return url


def test_db_current_on_an_empty_database_says_not_initialised_and_creates_nothing(
    db_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "current"]) == 0
    assert capsys.readouterr().out.startswith("not initialised")
    engine = make_engine(db_env)
    assert sa.inspect(engine).get_table_names() == []
    engine.dispose()


def test_db_upgrade_applies_every_revision_then_current_says_head(
    db_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "upgrade"]) == 0
    out = capsys.readouterr().out
    assert re.findall(r"^applied (\d{4})", out, re.M) == [r for r, _ in schema_history()]
    assert f"now at {head_revision()} (head)" in out
    assert main(["db", "current"]) == 0
    assert capsys.readouterr().out.strip() == f"{head_revision()} (head)"
    assert main(["db", "upgrade"]) == 0
    assert capsys.readouterr().out.strip() == f"already at {head_revision()} (head)"


def test_db_current_names_a_pending_upgrade(
    db_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = make_engine(db_env)
    upgrade_to(engine, "0001")
    engine.dispose()
    assert main(["db", "current"]) == 0
    assert capsys.readouterr().out.strip() == (
        f"0001 (head is {head_revision()}: run `faceplane db upgrade`)"
    )


def test_db_history_lists_every_revision_with_its_message(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["db", "history"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line[:4] for line in lines] == [rev for rev, _ in schema_history()]
    assert "app default webhooks" in lines[1].lower()
    assert lines[-1].endswith("(head)") and not lines[0].endswith("(head)")


def test_db_commands_report_an_unreachable_database_without_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FACEPLANE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FACEPLANE_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:1/x")
    assert main(["db", "current"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error DATABASE_ERROR:") and "Traceback" not in err


# ---- packaging -------------------------------------------------------------------------------


def test_a_built_package_finds_its_migrations_without_the_source_tree(tmp_path: Path) -> None:
    # What a wheel would hold (setuptools' build_py with the package data), built from a
    # copy: a build in place leaves build/ and egg-info in the checkout.
    tree, built = tmp_path / "tree", tmp_path / "built"
    shutil.copytree(
        REPO / "src", tree / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, tree / name)
    subprocess.run(
        [sys.executable, "-c", SETUP, "-q", "build_py", "--build-lib", str(built)],
        cwd=tree,
        check=True,
        capture_output=True,
    )
    shipped = {p.relative_to(MIGRATIONS_DIR) for p in MIGRATIONS_DIR.rglob("*.py")}
    packaged = built / "faceplane/store/migrations"
    assert shipped <= {p.relative_to(packaged) for p in packaged.rglob("*.py")}
    assert (built / "faceplane/store/migrations/script.py.mako").is_file()
    env = {"PYTHONPATH": str(built), "FACEPLANE_DATA_DIR": str(tmp_path / "data")}
    run = subprocess.run(
        [sys.executable, "-c", CHECK_BUILT],
        cwd=tmp_path,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    assert run.stdout.splitlines() == [str(built), f"now at {head_revision()} (head)"]


SETUP = "import setuptools; setuptools.setup()"  # reads [project] and [tool.setuptools]
CHECK_BUILT = """
import contextlib, io
import faceplane
from faceplane.cli import main
from pathlib import Path
out = io.StringIO()
with contextlib.redirect_stdout(out):
    main(["db", "upgrade"])
print(Path(faceplane.__file__).parents[1])
print(out.getvalue().splitlines()[-1])
"""
