"""The server's side of tasks: the executor, waiters for long polls, and maintenance."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from faceplane.services.context import Services
from faceplane.services.tasks import load_task, render_task
from faceplane.store import Store
from faceplane.tasks.runner import expire_tasks, recover_tasks
from faceplane.tasks.state import FINISHED
from faceplane.tasks.webhooks import deliver_due

if TYPE_CHECKING:
    from faceplane.tasks.celery import CeleryExecutor

log = logging.getLogger("faceplane.tasks")


class Executor(Protocol):
    """Something that runs queued tasks."""

    def start(self) -> None:
        """Start running tasks."""

    def notify(self, task_ids: list[str]) -> None:
        """These tasks were just queued."""

    def alive(self) -> int:
        """How many workers are known to be running (-1: unknown)."""

    def stop(self) -> None:
        """Stop."""


class TaskHub:
    """Owns the executor; wakes long-polling clients; runs recovery, expiry and webhooks."""

    def __init__(self, services: Services, store: Store) -> None:
        self.services = services
        self.store = store
        settings = services.settings
        self.executor: Executor
        self._celery: CeleryExecutor | None = None
        if settings.executor == "celery":
            from faceplane.tasks.celery import CeleryExecutor

            self.executor = self._celery = CeleryExecutor(settings)
        else:
            from faceplane.tasks.local import LocalExecutor

            self.executor = LocalExecutor(settings, self._on_done)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._events: dict[str, asyncio.Event] = {}
        self._maintenance: asyncio.Task[None] | None = None
        self._jobs: set[asyncio.Future[None]] = set()
        # Other periodic clean-ups of the server (expired rate-limit counters, ...).
        self.janitors: list[Callable[[], None]] = []

    async def start(self) -> None:
        """Recover what a previous run left, start the executor and the maintenance loop."""
        self._loop = asyncio.get_running_loop()
        if self.services.settings.executor == "local":
            # Embedded mode: only this server's workers use this database, and none is
            # running yet, so every task left `running` was orphaned by a crash.
            await asyncio.to_thread(recover_tasks, self.store, float("inf"))
        self.executor.start()
        self._maintenance = asyncio.create_task(self._maintain())

    async def stop(self) -> None:
        """Stop maintenance and the executor."""
        if self._maintenance:
            self._maintenance.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._maintenance
        await asyncio.to_thread(self.executor.stop)

    def queued(self, task_ids: list[str]) -> None:
        """Tell the executor about new tasks."""
        if task_ids:
            self.executor.notify(task_ids)

    def _on_done(self, task_id: str, status: str) -> None:
        # Called from the executor's listener thread.
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake, task_id)

    def _wake(self, task_id: str) -> None:
        event = self._events.get(task_id)
        if event is not None:
            event.set()
        # A finished task may have a webhook to send: do not wait for the next tick.
        if self._maintenance is not None:
            job = asyncio.ensure_future(asyncio.to_thread(self._deliver))
            self._jobs.add(job)
            job.add_done_callback(self._jobs.discard)

    async def wait(self, owner: str, task_id: str, timeout_s: float) -> dict[str, Any]:
        """The task's row once finished or when `timeout_s` runs out, whichever is first."""
        deadline = time.monotonic() + timeout_s
        event = self._events.setdefault(task_id, asyncio.Event())
        try:
            while True:
                row = await asyncio.to_thread(load_task, self.store, owner, task_id)
                remaining = deadline - time.monotonic()
                if row["status"] in FINISHED or remaining <= 0:
                    return row
                event.clear()
                # The event fires at once for local workers; other executors finish in another
                # process, so the table is polled (briefly: this is a client's latency).
                poll = 0.2 if self.services.settings.executor == "local" else 0.02
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), timeout=min(remaining, poll))
        finally:
            self._events.pop(task_id, None)

    def _deliver(self) -> None:
        deliver_due(self.services, self.store, self._render)

    def _render(self, row: dict[str, Any]) -> dict[str, Any]:
        return render_task(self.services, self.store, row)

    async def _maintain(self) -> None:
        interval = self.services.settings.maintenance_interval_s
        while True:
            try:
                await asyncio.to_thread(recover_tasks, self.store)
                if self._celery is not None:
                    # Celery cannot see the table: a requeued task, or one whose message was
                    # never published, needs a new message.
                    await asyncio.to_thread(self._celery.republish_stale, self.store)
                await asyncio.to_thread(expire_tasks, self.store)
                await asyncio.to_thread(self._deliver)
                for janitor in self.janitors:
                    await asyncio.to_thread(janitor)
            except Exception:  # maintenance must outlive a bad tick
                log.exception("task maintenance failed")
            await asyncio.sleep(interval)
