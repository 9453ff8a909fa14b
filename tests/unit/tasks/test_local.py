"""The embedded executor, driven directly: worker processes claim and run tasks from the
table, report what finished, and a killed worker is replaced."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from faceplane.runtime import Runtime
from faceplane.services.images import ImageSource
from faceplane.services.tasks import TaskSpec, load_task, submit_task
from faceplane.settings import Settings
from faceplane.tasks.local import LocalExecutor


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[Runtime]:
    runtime = Runtime.open(Settings(data_dir=tmp_path, workers=1))
    yield runtime
    runtime.close()


def test_a_worker_process_runs_a_task_reports_it_and_is_replaced_when_killed(
    rt: Runtime, astronaut: bytes
) -> None:
    done: dict[str, str] = {}
    finished = threading.Event()

    def on_done(task_id: str, status: str) -> None:
        done[task_id] = status
        finished.set()

    executor = LocalExecutor(rt.settings, on_done)
    executor.start()
    try:
        spec = TaskSpec("detect", {"image": ImageSource("image", data=astronaut)}, {})
        task, _ = submit_task(rt, "c1", spec)
        executor.notify([task["request_id"]])
        assert finished.wait(90), "no worker reported the task"
        assert done == {task["request_id"]: "succeeded"}
        assert load_task(rt, "c1", task["request_id"])["status"] == "succeeded"
        assert executor.alive() == 1
        (proc,) = executor._procs
        os.kill(proc.pid, signal.SIGKILL)
        deadline = time.time() + 30
        while time.time() < deadline and (executor._procs[0] is proc or executor.alive() != 1):
            time.sleep(0.1)
        assert executor._procs[0] is not proc and executor.alive() == 1
    finally:
        executor.stop()
    assert executor.alive() == 0
