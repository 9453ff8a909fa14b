"""The runner, called directly on SQLite and PostgreSQL: claims are leases, a run ends in one
transition, a lost lease drops the outcome, dead workers' tasks come back or fail, and
expired tasks are failed and deleted for real."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from faceplane.runtime import Runtime
from faceplane.services.images import ImageSource
from faceplane.services.tasks import TaskSpec, submit_task
from faceplane.settings import Settings
from faceplane.store import Store
from faceplane.store.db import tasks, webhook_attempts, write_tx
from faceplane.tasks.runner import (
    claim_next,
    claim_task,
    execute,
    expire_tasks,
    recover_tasks,
    stale_queued,
)


@pytest.fixture
def rt(database_url: str, tmp_path: Path) -> Iterator[Runtime]:
    runtime = Runtime.open(Settings(data_dir=tmp_path, database_url=database_url, workers=0))
    with write_tx(runtime.store.db) as conn:  # the module's database is shared by its tests
        conn.execute(webhook_attempts.delete())
        conn.execute(tasks.delete())
    yield runtime
    runtime.close()
    runtime.store.db.dispose()


@pytest.fixture
def store(rt: Runtime) -> Store:
    """The runtime's store (the conftest's row helpers write through it)."""
    return rt.store


def submit(rt: Runtime, data: bytes, company: str = "c1") -> str:
    spec = TaskSpec("detect", {"image": ImageSource("image", data=data)}, {})
    return str(submit_task(rt, company, spec)[0]["request_id"])


def test_claim_next_takes_the_oldest_queued_task_once(
    store: Store, put_task: Callable[..., str], task_row: Callable[[str], dict[str, Any]]
) -> None:
    now = time.time()
    newer = put_task("queued", created_at=now)
    older = put_task("queued", created_at=now - 10)
    put_task("running", created_at=now - 20)
    row = claim_next(store, "w1", 30)
    assert row is not None and row["id"] == older
    assert row["status"] == "running" and row["worker"] == "w1" and row["attempts"] == 1
    assert row["lease_until"] > time.time() + 20 and row["started_at"]
    second = claim_next(store, "w2", 30)
    assert second is not None and second["id"] == newer
    assert claim_next(store, "w3", 30) is None
    assert task_row(older)["worker"] == "w1"


def test_claim_task_takes_only_a_queued_task(store: Store, put_task: Callable[..., str]) -> None:
    queued, canceled = put_task("queued"), put_task("canceled")
    assert claim_task(store, canceled, "w1", 30) is None
    assert claim_task(store, "no-such-task", "w1", 30) is None
    row = claim_task(store, queued, "w1", 30)
    assert row is not None and row["status"] == "running"
    assert claim_task(store, queued, "w2", 30) is None  # a duplicate message is a no-op


def test_a_claimed_detect_task_runs_to_success(
    rt: Runtime, astronaut: bytes, task_row: Callable[[str], dict[str, Any]]
) -> None:
    task_id = submit(rt, astronaut)
    row = claim_task(rt.store, task_id, "w1", 30)
    assert row is not None
    assert execute(rt, row) == "succeeded"
    done = task_row(task_id)
    assert done["status"] == "succeeded" and done["finished_at"] and done["lease_until"] is None
    assert json.loads(done["result_json"])["faces"]


def test_a_catalogue_error_fails_the_task_at_once(
    rt: Runtime, task_row: Callable[[str], dict[str, Any]]
) -> None:
    task_id = submit(rt, b"not an image")
    row = claim_task(rt.store, task_id, "w1", 30)
    assert row is not None and execute(rt, row) == "failed"
    done = task_row(task_id)
    assert json.loads(done["error_json"])["code"] == "IMAGE_CORRUPT" and done["attempts"] == 1


def test_a_crash_is_retried_then_failed_as_internal(
    rt: Runtime, put_task: Callable[..., str], task_row: Callable[[str], dict[str, Any]]
) -> None:
    # An input reference that is neither a blob nor a URL: a bug, not a catalogue error.
    task_id = put_task("queued", input_json='{"image": {"neither": "blob nor url"}}')
    for attempt in range(1, rt.settings.task_max_attempts + 1):
        row = claim_task(rt.store, task_id, "w1", 30)
        assert row is not None and row["attempts"] == attempt
        last = attempt == rt.settings.task_max_attempts
        assert execute(rt, row) == ("failed" if last else "queued")
        if not last:
            assert task_row(task_id)["worker"] is None
    assert json.loads(task_row(task_id)["error_json"])["code"] == "INTERNAL"


def test_a_cancel_requested_before_the_run_cancels_it(
    rt: Runtime, astronaut: bytes, task_row: Callable[[str], dict[str, Any]]
) -> None:
    task_id = submit(rt, astronaut)
    row = claim_task(rt.store, task_id, "w1", 30)
    assert row is not None
    row["cancel_requested"] = True  # as the worker reads it
    assert execute(rt, row) == "canceled"
    assert task_row(task_id)["status"] == "canceled"


def test_a_worker_that_lost_its_lease_drops_its_outcome(
    rt: Runtime, put_task: Callable[..., str], task_row: Callable[[str], dict[str, Any]]
) -> None:
    task_id = put_task("queued", input_json="{}")
    row = claim_task(rt.store, task_id, "w1", 30)
    assert row is not None
    stale = {**row, "worker": "w0"}  # another worker took it over meanwhile
    assert execute(rt, stale) == "lost"
    assert task_row(task_id)["status"] == "running" and task_row(task_id)["worker"] == "w1"


def test_recovery_requeues_lost_tasks_with_attempts_left_and_fails_the_others(
    store: Store, put_task: Callable[..., str], task_row: Callable[[str], dict[str, Any]]
) -> None:
    past = time.time() - 5
    retry = put_task("running", worker="w1", lease_until=past, attempts=1)
    spent = put_task(
        "running", worker="w1", lease_until=past, attempts=3, webhook_url="https://h.test/x"
    )
    alive = put_task("running", worker="w2", lease_until=time.time() + 60, attempts=1)
    assert recover_tasks(store) == 2
    assert task_row(retry)["status"] == "queued" and task_row(retry)["worker"] is None
    failed = task_row(spent)
    assert failed["status"] == "failed" and failed["webhook_state"] == "pending"
    assert json.loads(failed["error_json"])["code"] == "WORKER_FAILED"
    assert task_row(alive)["status"] == "running"
    # At a server's start every running task of the embedded mode is orphaned.
    assert recover_tasks(store, float("inf")) == 1 and task_row(alive)["status"] == "queued"


def test_expiry_fails_queued_tasks_and_deletes_every_input_and_result(
    rt: Runtime, astronaut: bytes, task_row: Callable[[str], dict[str, Any]]
) -> None:
    queued = submit(rt, astronaut)
    running = submit(rt, astronaut)
    assert claim_task(rt.store, running, "w1", 30) is not None
    later = task_row(queued)["expires_at"] + 1
    assert expire_tasks(rt.store, now=later) == 1
    gone = task_row(queued)
    assert gone["status"] == "failed" and gone["purged"] and gone["input_json"] == "{}"
    assert json.loads(gone["error_json"])["code"] == "TASK_EXPIRED"
    assert not (rt.settings.data_dir / "blobs" / "tasks" / queued).exists()
    assert task_row(running)["status"] == "running" and not task_row(running)["purged"]


def test_stale_queued_names_untouched_tasks_once_per_period(
    store: Store, put_task: Callable[..., str]
) -> None:
    old = put_task("queued", updated_at=time.time() - 60)
    put_task("queued")
    put_task("succeeded", updated_at=time.time() - 60)
    assert stale_queued(store, 30) == [old]
    assert stale_queued(store, 30) == []  # touched: not again until another period passes
