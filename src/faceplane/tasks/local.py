"""The embedded executor: worker processes started by the server, pulling from the task table.

Inference runs in processes, not threads, so every core is used. The database is the truth;
an in-memory queue only wakes idle workers early, and a second one tells the server which
tasks finished (for long-polling waiters and webhooks).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import queue
import threading
from collections.abc import Callable
from typing import Any

from faceplane.settings import Settings

log = logging.getLogger("faceplane.workers")

IDLE_POLL_S = 0.5


def worker_main(settings_json: str, wake: Any, done: Any, name: str, parent_pid: int) -> None:
    """One worker process: claim, execute, report; exit when the server is gone."""
    from faceplane.runtime import Runtime
    from faceplane.tasks.runner import claim_next, execute

    settings = Settings.model_validate_json(settings_json)
    rt = Runtime.open(settings)
    store = rt.store
    while os.getppid() == parent_pid:
        row = claim_next(store, name, settings.task_lease_s)
        if row is None:
            with contextlib.suppress(queue.Empty):
                wake.get(timeout=IDLE_POLL_S)
            continue
        status = execute(rt, row)
        done.put((row["id"], status))


class LocalExecutor:
    """Starts and stops the worker processes; wakes them; relays finished task ids."""

    def __init__(self, settings: Settings, on_done: Callable[[str, str], None]) -> None:
        self.settings = settings
        self._ctx = mp.get_context("spawn")
        self._wake: Any = self._ctx.Queue()
        self._done: Any = self._ctx.Queue()
        self._procs: list[Any] = []
        self._on_done = on_done
        self._listener: threading.Thread | None = None
        self._stopping = False
        self._spawned = 0

    def _spawn(self, slot: int) -> Any:
        self._spawned += 1
        name = f"local-{os.getpid()}-{slot}-{self._spawned}"
        proc = self._ctx.Process(
            target=worker_main,
            args=(self.settings.model_dump_json(), self._wake, self._done, name, os.getpid()),
            name=f"faceplane-worker-{slot}",
            daemon=True,
        )
        proc.start()
        return proc

    def start(self) -> None:
        """Spawn `settings.workers` processes and the listener thread."""
        self._procs = [self._spawn(i) for i in range(self.settings.workers)]
        self._listener = threading.Thread(target=self._listen, daemon=True)
        self._listener.start()
        log.info("started %d local worker process(es)", len(self._procs))

    def _listen(self) -> None:
        while not self._stopping:
            self._supervise()
            try:
                task_id, status = self._done.get(timeout=0.5)
            except queue.Empty:
                continue
            except (EOFError, OSError):
                return
            self._on_done(task_id, status)

    def _supervise(self) -> None:
        """Replace dead workers; the task a dead worker held comes back when its lease ends."""
        for slot, proc in enumerate(self._procs):
            if not proc.is_alive() and not self._stopping:
                log.warning(
                    "worker %s died (exit %s); starting a new one", proc.name, proc.exitcode
                )
                self._procs[slot] = self._spawn(slot)

    def notify(self, task_ids: list[str]) -> None:
        """Wake idle workers: these tasks were queued (the table says which; ids are hints)."""
        for _ in range(min(len(task_ids), max(len(self._procs), 1))):
            self._wake.put_nowait(1)

    def alive(self) -> int:
        """How many worker processes are running."""
        return sum(1 for p in self._procs if p.is_alive())

    def stop(self) -> None:
        """Stop the workers (a running task is recovered by its lease on the next start)."""
        self._stopping = True
        for proc in self._procs:
            proc.terminate()
        for proc in self._procs:
            proc.join(timeout=5)
        self._procs.clear()
