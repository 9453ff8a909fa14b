"""Running tasks: claim one, execute it through the operation registry, record the outcome.

Every executor (local worker processes, Celery workers) uses these functions, so a task
runs the same code whoever runs it. Claims are leases: a worker that dies leaves a task whose
lease runs out, and `recover_tasks` queues it again (or fails it when attempts are spent).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from sqlalchemy import and_, select, update

from faceplane.errors import Err, FaceplaneError
from faceplane.runtime import Runtime
from faceplane.services.images import ImageSource
from faceplane.services.operations import run_operation
from faceplane.store import Store
from faceplane.store.db import tasks, write_tx
from faceplane.tasks.state import Status, transition, transition_rows

log = logging.getLogger("faceplane.tasks")


def _claim(store: Store, where: Any, worker: str, lease_s: float) -> dict[str, Any] | None:
    now = time.time()
    with write_tx(store.db) as conn:
        rows = transition_rows(
            conn,
            where,
            Status.QUEUED,
            Status.RUNNING,
            now=now,
            attempts=tasks.c.attempts + 1,
            worker=worker,
            lease_until=now + lease_s,
            started_at=now,
        )
    return rows[0] if rows else None


def claim_next(store: Store, worker: str, lease_s: float) -> dict[str, Any] | None:
    """Take the oldest queued task (SKIP LOCKED on PostgreSQL; SQLite serialises writers)."""
    oldest = (
        select(tasks.c.id)
        .where(tasks.c.status == Status.QUEUED)
        .order_by(tasks.c.created_at)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    return _claim(store, tasks.c.id == oldest, worker, lease_s)


def claim_task(store: Store, task_id: str, worker: str, lease_s: float) -> dict[str, Any] | None:
    """Take one named task if it is still queued (the Celery path)."""
    return _claim(store, tasks.c.id == task_id, worker, lease_s)


def _finish(store: Store, row: dict[str, Any], status: Status, **values: Any) -> bool:
    """Move a running task to `status` if this worker still holds it; False if it lost it."""
    with write_tx(store.db) as conn:
        count = transition(
            conn,
            and_(tasks.c.id == row["id"], tasks.c.worker == row["worker"]),
            Status.RUNNING,
            status,
            **values,
        )
    return bool(count)


def _inputs(store: Store, row: dict[str, Any]) -> dict[str, ImageSource]:
    images = {}
    for name, ref in json.loads(row["input_json"]).items():
        if "blob" in ref:
            images[name] = ImageSource(field=name, data=store.blobs.get(ref["blob"]))
        else:
            images[name] = ImageSource(field=name, url=ref["url"])
    return images


def _cancel_requested(store: Store, task_id: str) -> bool:
    with store.db.connect() as conn:
        return bool(
            conn.execute(select(tasks.c.cancel_requested).where(tasks.c.id == task_id)).scalar()
        )


class _Heartbeat:
    """Renews a running task's lease while its worker is alive, so a long task is not taken
    for lost; a worker that dies stops renewing, and the lease runs out."""

    def __init__(self, store: Store, row: dict[str, Any], lease_s: float) -> None:
        self._store, self._row, self._lease_s = store, row, lease_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self) -> None:
        while not self._stop.wait(self._lease_s / 3):
            with write_tx(self._store.db) as conn:
                conn.execute(
                    update(tasks)
                    .where(
                        and_(
                            tasks.c.id == self._row["id"],
                            tasks.c.worker == self._row["worker"],
                            tasks.c.status == Status.RUNNING,
                        )
                    )
                    .values(lease_until=time.time() + self._lease_s)
                )

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def execute(rt: Runtime, row: dict[str, Any]) -> str:
    """Run a claimed task to its end and return its final status (`lost` when another worker
    took it over meanwhile: its outcome is the other worker's)."""
    store = rt.store
    with _Heartbeat(store, row, rt.settings.task_lease_s):
        status, values = _run(rt, row)
    if not _finish(store, row, status, **values):
        log.warning(
            "task %s was taken over by another worker; this run's outcome is dropped", row["id"]
        )
        return "lost"
    return status.value


def _run(rt: Runtime, row: dict[str, Any]) -> tuple[Status, dict[str, Any]]:
    """Run the operation; return the status to move to and the columns to write."""
    store = rt.store
    task_id = row["id"]
    if row["cancel_requested"]:
        return Status.CANCELED, {}
    try:
        result = run_operation(
            rt,
            row["operation"],
            _inputs(store, row),
            json.loads(row["options_json"]),
            row["company_id"],
        )
    except FaceplaneError as exc:
        # A catalogue error is the answer (no face, bad image): retrying cannot change it.
        error = {"code": exc.err.name, "message": exc.message, "details": exc.details}
        return Status.FAILED, {"error_json": json.dumps(error)}
    except Exception:
        log.exception("task %s crashed (attempt %s)", task_id, row["attempts"])
        if row["attempts"] < row["max_attempts"]:
            return Status.QUEUED, {}
        error = {"code": Err.INTERNAL.name, "message": Err.INTERNAL.message, "details": {}}
        return Status.FAILED, {"error_json": json.dumps(error)}
    if _cancel_requested(store, task_id):
        return Status.CANCELED, {}  # cooperative: the result is dropped
    body = dict(result.body)
    if result.images:
        body["_images"] = {
            name: store.blobs.put(f"tasks/{task_id}/result/{name}.jpg", data)
            for name, data in result.images.items()
        }
    return Status.SUCCEEDED, {"result_json": json.dumps(body)}


def recover_tasks(store: Store, now: float | None = None) -> int:
    """Requeue running tasks whose lease ran out (before `now`, default: the clock), or fail
    them when no attempt is left. A live worker renews its lease, so its task is never taken."""
    lease_cut = now if now is not None else time.time()
    now = time.time()
    lost = tasks.c.lease_until < lease_cut
    error = json.dumps(
        {
            "code": Err.WORKER_FAILED.name,
            "message": "The worker running this task stopped; no attempt is left.",
            "details": {},
        }
    )
    with write_tx(store.db) as conn:
        retried = transition(
            conn,
            and_(lost, tasks.c.attempts < tasks.c.max_attempts),
            Status.RUNNING,
            Status.QUEUED,
            now=now,
        )
        failed = transition(
            conn,
            and_(lost, tasks.c.attempts >= tasks.c.max_attempts),
            Status.RUNNING,
            Status.FAILED,
            now=now,
            error_json=error,
        )
    if retried or failed:
        log.warning("recovered tasks from dead workers: %s requeued, %s failed", retried, failed)
    return int(retried + failed)


def stale_queued(store: Store, older_than_s: float, limit: int = 500) -> list[str]:
    """Ids of queued tasks untouched for `older_than_s`, touched now (once per period)."""
    # Bumping `updated_at` keeps a task from coming back every tick; SKIP LOCKED keeps two
    # servers from both taking it.
    now = time.time()
    with write_tx(store.db) as conn:
        ids = (
            conn.execute(
                select(tasks.c.id)
                .where(
                    and_(tasks.c.status == Status.QUEUED, tasks.c.updated_at < now - older_than_s)
                )
                .order_by(tasks.c.created_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            .scalars()
            .all()
        )
        if ids:
            conn.execute(
                update(tasks)
                .where(and_(tasks.c.id.in_(ids), tasks.c.status == Status.QUEUED))
                .values(updated_at=now)
            )
    return list(ids)


def expire_tasks(store: Store, now: float | None = None) -> int:
    """Past their TTL: fail tasks still queued, and delete every input and result for real."""
    now = now or time.time()
    error = json.dumps(
        {
            "code": Err.TASK_EXPIRED.name,
            "message": "The task expired before a worker could run it.",
            "details": {},
        }
    )
    with write_tx(store.db) as conn:
        transition(
            conn, tasks.c.expires_at < now, Status.QUEUED, Status.FAILED, now=now, error_json=error
        )
        ids = (
            conn.execute(
                select(tasks.c.id).where(
                    and_(
                        tasks.c.expires_at < now,
                        tasks.c.purged.is_(False),
                        tasks.c.status != Status.RUNNING,
                    )
                )
            )
            .scalars()
            .all()
        )
        if ids:
            conn.execute(
                update(tasks)
                .where(tasks.c.id.in_(ids))
                .values(purged=True, result_json=None, input_json="{}", updated_at=now)
            )
    for task_id in ids:
        store.blobs.delete_prefix(f"tasks/{task_id}")
    return len(ids)
