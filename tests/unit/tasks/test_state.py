"""The task state machine: every legal move applied on a real database, every illegal one
refused before any SQL, and `transition` the only code that writes `tasks.status`."""

from __future__ import annotations

import ast
import itertools
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from faceplane.store import Store
from faceplane.store.db import tasks, write_tx
from faceplane.tasks.state import (
    FINISHED,
    TRANSITIONS,
    IllegalTransition,
    Status,
    check_transition,
    transition,
    transition_rows,
)

SRC = Path(__file__).resolve().parents[3] / "src" / "faceplane"

LEGAL = [(a, b) for a in Status for b in sorted(TRANSITIONS[a])]
ILLEGAL = [(a, b) for a, b in itertools.product(Status, Status) if b not in TRANSITIONS[a]]


def test_the_table_has_seven_legal_moves_and_eighteen_illegal_ones() -> None:
    assert len(LEGAL) == 7 and len(ILLEGAL) == 18
    assert all(not TRANSITIONS[s] for s in FINISHED)


@pytest.mark.parametrize(("src", "dst"), ILLEGAL, ids=[f"{a}-to-{b}" for a, b in ILLEGAL])
def test_an_illegal_move_raises_and_writes_nothing(
    src: Status,
    dst: Status,
    store: Store,
    put_task: Callable[..., str],
    task_row: Callable[[str], dict[str, Any]],
) -> None:
    task_id = put_task(src.value)
    before = task_row(task_id)
    with pytest.raises(IllegalTransition):
        check_transition(src, dst)
    with pytest.raises(IllegalTransition), write_tx(store.db) as conn:
        transition(conn, task_id, src, dst)
    assert task_row(task_id) == before


@pytest.mark.parametrize(("src", "dst"), LEGAL, ids=[f"{a}-to-{b}" for a, b in LEGAL])
def test_a_legal_move_is_applied_with_its_bookkeeping(
    src: Status,
    dst: Status,
    store: Store,
    put_task: Callable[..., str],
    task_row: Callable[[str], dict[str, Any]],
) -> None:
    lease = {"worker": "w1", "lease_until": 2e9} if src == Status.RUNNING else {}
    task_id = put_task(src.value, webhook_url="https://example.com/hook", **lease)
    with write_tx(store.db) as conn:
        moved = transition(conn, task_id, src, dst, now=1234.5)
    assert moved == 1
    row = task_row(task_id)
    assert row["status"] == dst.value and row["updated_at"] == 1234.5
    if dst != Status.RUNNING:
        assert row["lease_until"] is None
    if dst == Status.QUEUED:
        assert row["worker"] is None
    if dst in FINISHED:
        assert row["finished_at"] == 1234.5
        assert row["webhook_state"] == "pending" and row["webhook_next_at"] == 1234.5
    else:
        assert row["finished_at"] is None and row["webhook_state"] is None


def test_a_move_applies_only_to_tasks_still_in_a_source_state(
    store: Store, put_task: Callable[..., str], task_row: Callable[[str], dict[str, Any]]
) -> None:
    done = put_task("succeeded")
    with write_tx(store.db) as conn:
        # Legal as a move, but the task is no longer queued: the conditional UPDATE skips it.
        assert transition(conn, done, Status.QUEUED, Status.CANCELED) == 0
    assert task_row(done)["status"] == "succeeded"


def test_a_move_from_several_sources_takes_each_of_them(
    store: Store, put_task: Callable[..., str], task_row: Callable[[str], dict[str, Any]]
) -> None:
    queued, running, done = put_task("queued"), put_task("running"), put_task("succeeded")
    with write_tx(store.db) as conn:
        moved = transition(
            conn,
            tasks.c.id.in_([queued, running, done]),
            [Status.QUEUED, Status.RUNNING],
            Status.FAILED,
            error_json='{"code": "X"}',
        )
    assert moved == 2
    assert [task_row(t)["status"] for t in (queued, running, done)] == [
        "failed",
        "failed",
        "succeeded",
    ]
    assert task_row(queued)["error_json"] == '{"code": "X"}'


def test_one_illegal_source_refuses_the_whole_move(
    store: Store, put_task: Callable[..., str], task_row: Callable[[str], dict[str, Any]]
) -> None:
    queued = put_task("queued")
    with pytest.raises(IllegalTransition), write_tx(store.db) as conn:
        transition(conn, queued, [Status.QUEUED, Status.CANCELED], Status.RUNNING)
    assert task_row(queued)["status"] == "queued"


def test_status_cannot_be_smuggled_in_as_a_column_value(
    store: Store, put_task: Callable[..., str]
) -> None:
    task_id = put_task("queued")
    with pytest.raises(IllegalTransition), write_tx(store.db) as conn:
        transition(conn, task_id, Status.QUEUED, Status.RUNNING, status="succeeded")


def test_transition_rows_returns_the_moved_rows(store: Store, put_task: Callable[..., str]) -> None:
    task_id = put_task("queued")
    with write_tx(store.db) as conn:
        rows = transition_rows(
            conn, task_id, Status.QUEUED, Status.RUNNING, worker="w9", attempts=tasks.c.attempts + 1
        )
        again = transition_rows(conn, task_id, Status.QUEUED, Status.RUNNING, worker="w10")
    assert [(r["id"], r["status"], r["worker"], r["attempts"]) for r in rows] == [
        (task_id, "running", "w9", 1)
    ]
    assert again == []


# ---- the only writer -----------------------------------------------------------------------


def _chain_targets_tasks(node: ast.AST) -> str | None:
    """'update' or 'insert' when a method chain starts from `update(tasks)` / `tasks.update()`
    (or insert), else None."""
    while True:
        if isinstance(node, ast.Call):
            func = node.func
            if (
                isinstance(func, ast.Name)
                and func.id in ("update", "insert")
                and node.args
                and isinstance(node.args[0], ast.Name)
                and node.args[0].id == "tasks"
            ):
                return func.id
            if (
                isinstance(func, ast.Attribute)
                and func.attr in ("update", "insert")
                and isinstance(func.value, ast.Name)
                and func.value.id == "tasks"
            ):
                return func.attr
            node = func
        elif isinstance(node, ast.Attribute):
            node = node.value
        else:
            return None


def status_writers(source: str, filename: str) -> list[str]:
    """Where `source` writes tasks.status other than through the state machine."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if re.search(r"\bupdate\s+tasks\b", node.value, re.IGNORECASE):
                found.append(f"{filename}:{node.lineno}: raw SQL UPDATE of tasks")
            continue
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr not in ("values", "ordered_values"):
            continue
        kind = _chain_targets_tasks(node.func.value)
        if kind is None:
            continue
        if kind == "insert":
            found.append(f"{filename}:{node.lineno}: INSERT into tasks")
            continue
        for kw in node.keywords:
            if kw.arg == "status":
                found.append(f"{filename}:{node.lineno}: UPDATE tasks SET status")
            elif kw.arg is None:
                found.append(f"{filename}:{node.lineno}: UPDATE tasks with **values")
        if node.args:
            found.append(f"{filename}:{node.lineno}: UPDATE tasks with a values dict")
    return found


def test_the_writer_check_finds_every_way_of_writing_status() -> None:
    bad = """
conn.execute(update(tasks).where(tasks.c.id == x).values(status="failed"))
conn.execute(tasks.update().values(**cols))
conn.execute(update(tasks).values({"status": "queued"}))
conn.execute(text("UPDATE tasks SET status = 'failed'"))
conn.execute(tasks.insert().values(**row))
"""
    assert len(status_writers(bad, "bad.py")) == 5
    fine = "conn.execute(update(tasks).where(w).values(webhook_state='pending'))"
    assert status_writers(fine, "fine.py") == []


def test_no_module_but_the_state_machine_writes_task_status() -> None:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if rel == "tasks/state.py":
            continue
        writes = status_writers(path.read_text(), rel)
        if rel == "services/tasks.py":
            # The one allowed INSERT: a new task, queued.
            inserts = [w for w in writes if "INSERT" in w]
            assert len(inserts) == 1, inserts
            writes = [w for w in writes if "INSERT" not in w]
        found += writes
    assert found == []


def test_new_tasks_are_inserted_queued() -> None:
    source = (SRC / "services" / "tasks.py").read_text()
    assert '"status": Status.QUEUED.value' in source
