"""The task hub, driven directly on an event loop: recovery at start, long-poll waits that
end on a finish or a timeout, and the maintenance loop expiring tasks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from faceplane.runtime import Runtime
from faceplane.settings import Settings
from faceplane.store import Store
from faceplane.store.db import write_tx
from faceplane.tasks.hub import TaskHub
from faceplane.tasks.state import Status, transition


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[Runtime]:
    runtime = Runtime.open(Settings(data_dir=tmp_path, workers=0, maintenance_interval_s=0.05))
    yield runtime
    runtime.close()


@pytest.fixture
def store(rt: Runtime) -> Store:
    return rt.store


def test_start_requeues_only_the_running_tasks_whose_lease_ran_out(
    rt: Runtime, put_task: Callable[..., str], task_row: Callable[[str], dict[str, Any]]
) -> None:
    orphan = put_task("running", worker="local-1-0-1", lease_until=time.time() - 1)
    # Another server's worker (or a killed server's worker finishing its task) renews this one.
    alive = put_task("running", worker="local-2-0-1", lease_until=time.time() + 3600)

    async def main() -> None:
        hub = TaskHub(rt)
        await hub.start()
        await hub.stop()

    asyncio.run(main())
    assert task_row(orphan)["status"] == "queued" and task_row(orphan)["worker"] is None
    assert task_row(alive)["status"] == "running" and task_row(alive)["worker"] == "local-2-0-1"


def test_a_wait_ends_when_the_task_finishes(rt: Runtime, put_task: Callable[..., str]) -> None:
    task_id = "t" * 32

    def finish() -> None:
        with write_tx(rt.store.db) as conn:
            transition(conn, task_id, Status.RUNNING, Status.SUCCEEDED, result_json="{}")

    async def main() -> tuple[dict[str, Any], float]:
        hub = TaskHub(rt)
        await hub.start()
        try:
            put_task("running", id=task_id, worker="w1", lease_until=time.time() + 60)
            loop = asyncio.get_running_loop()
            loop.call_later(0.3, lambda: (finish(), hub._on_done(task_id, "succeeded")))
            started = time.monotonic()
            row = await hub.wait("c1", task_id, 10)
            return row, time.monotonic() - started
        finally:
            await hub.stop()

    row, took = asyncio.run(main())
    assert row["status"] == "succeeded" and 0.25 < took < 5


def test_a_wait_on_a_queued_task_ends_at_its_timeout(
    rt: Runtime, put_task: Callable[..., str]
) -> None:
    task_id = put_task("queued")

    async def main() -> tuple[dict[str, Any], float]:
        hub = TaskHub(rt)
        await hub.start()
        try:
            started = time.monotonic()
            return await hub.wait("c1", task_id, 0.4), time.monotonic() - started
        finally:
            await hub.stop()

    row, took = asyncio.run(main())
    assert row["status"] == "queued" and 0.35 < took < 3


def test_maintenance_expires_tasks_past_their_ttl(
    rt: Runtime, put_task: Callable[..., str], task_row: Callable[[str], dict[str, Any]]
) -> None:
    stale = put_task("queued", expires_at=time.time() - 1)

    async def main() -> None:
        hub = TaskHub(rt)
        await hub.start()
        try:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and not task_row(stale)["purged"]:
                await asyncio.sleep(0.05)
        finally:
            await hub.stop()

    asyncio.run(main())
    row = task_row(stale)
    assert row["status"] == "failed" and row["purged"]
