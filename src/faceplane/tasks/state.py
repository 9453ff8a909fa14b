"""The task state machine: queued → running → succeeded | failed | canceled.

`transition` is the only code that writes `tasks.status` (besides the INSERT of a new queued
task): claim, finish, cancel, recovery and expiry all move tasks through it, so every move is
checked against `TRANSITIONS` before it reaches the database, and the database applies it
only to rows still in a legal source state (a conditional UPDATE: two writers racing for one
task cannot both win). A test checks that no other module sets `status` on the tasks table.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from enum import StrEnum
from typing import Any

from sqlalchemy import and_, case, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.expression import ColumnElement

from faceplane.store.db import tasks


class Status(StrEnum):
    """A task's status."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


FINISHED = frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELED})

TRANSITIONS: dict[Status, frozenset[Status]] = {
    # queued → failed: expired before it ran; running → queued: a worker died, retried.
    Status.QUEUED: frozenset({Status.RUNNING, Status.CANCELED, Status.FAILED}),
    Status.RUNNING: frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELED, Status.QUEUED}),
    Status.SUCCEEDED: frozenset(),
    Status.FAILED: frozenset(),
    Status.CANCELED: frozenset(),
}


class IllegalTransition(RuntimeError):
    """A move the state machine does not allow."""


def check_transition(current: str, new: str) -> Status:
    """Return `new` as a Status, or raise IllegalTransition."""
    cur, nxt = Status(current), Status(new)
    if nxt not in TRANSITIONS[cur]:
        raise IllegalTransition(f"task cannot go from {cur} to {nxt}")
    return nxt


def _move(
    task: str | ColumnElement[bool],
    sources: Status | Iterable[Status],
    to: Status,
    now: float | None,
    values: dict[str, Any],
) -> Any:
    """The conditional UPDATE of a legal move (IllegalTransition before any SQL for another)."""
    froms = [Status(sources)] if isinstance(sources, str) else [Status(s) for s in sources]
    if not froms:
        raise IllegalTransition("a transition needs at least one source status")
    nxt = Status(to)
    for src in froms:
        check_transition(src, nxt)
    if "status" in values:
        raise IllegalTransition("the target status is `to`, not a column value")
    now = time.time() if now is None else now
    cols: dict[str, Any] = {"updated_at": now}
    if nxt != Status.RUNNING:
        cols["lease_until"] = None  # only a running task holds a lease
    if nxt == Status.QUEUED:
        cols["worker"] = None
    if nxt in FINISHED:
        cols["finished_at"] = now
        # Every finished task with a webhook owes its `task.finished` delivery, however it
        # finished (run, canceled while queued, expired, given up after a dead worker).
        cols["webhook_state"] = case((tasks.c.webhook_url.is_not(None), "pending"), else_=None)
        cols["webhook_next_at"] = case((tasks.c.webhook_url.is_not(None), now), else_=None)
    cols.update(values)
    where = tasks.c.id == task if isinstance(task, str) else task
    return (
        update(tasks)
        .where(and_(where, tasks.c.status.in_([s.value for s in froms])))
        .values(status=nxt.value, **cols)
    )


def transition(
    conn: Connection,
    task: str | ColumnElement[bool],
    sources: Status | Iterable[Status],
    to: Status,
    *,
    now: float | None = None,
    **values: Any,
) -> int:
    """Move the task `task` (an id, or a WHERE clause over the tasks table) from any of
    `sources` to `to`, writing `values` too; return how many tasks moved (0: none was in a
    source state any more). An illegal move raises IllegalTransition and writes nothing."""
    return int(conn.execute(_move(task, sources, to, now, values)).rowcount)


def transition_rows(
    conn: Connection,
    task: str | ColumnElement[bool],
    sources: Status | Iterable[Status],
    to: Status,
    *,
    now: float | None = None,
    **values: Any,
) -> list[dict[str, Any]]:
    """`transition`, returning the moved rows as they are after the move (a claim needs them)."""
    stmt = _move(task, sources, to, now, values).returning(*tasks.c)
    return [dict(r) for r in conn.execute(stmt).mappings().all()]
