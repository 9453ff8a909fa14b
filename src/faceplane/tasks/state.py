"""The task state machine: queued → running → succeeded | failed | canceled."""

from __future__ import annotations

from enum import StrEnum


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
