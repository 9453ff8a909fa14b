"""The server's side of tasks: the executor, waiters for long polls, and maintenance."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from typing import TYPE_CHECKING, Any, Protocol

from faceplane.runtime import Runtime
from faceplane.services.tasks import load_task, render_task
from faceplane.tasks.runner import expire_tasks, recover_tasks
from faceplane.tasks.state import FINISHED
from faceplane.tasks.webhooks import deliver_due

if TYPE_CHECKING:
    from faceplane.tasks.celery import CeleryExecutor

log = logging.getLogger("faceplane.tasks")

# Notifications waiting for the notifier thread; past this many the broker is stuck, and more
# are dropped: the tasks are in the table, and maintenance republishes what nobody took.
MAX_PENDING_NOTIFY = 10_000
NOTIFY_BATCH = 500  # task ids per notify call at most, when a burst piled up


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

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.store = rt.store
        settings = rt.settings
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
        # Task ids for the notifier thread; None tells it to end.
        self._pending: queue.Queue[list[str] | None] = queue.Queue(MAX_PENDING_NOTIFY)
        self._notifier: threading.Thread | None = None
        self._notifier_lock = threading.Lock()

    async def start(self) -> None:
        """Recover what a previous run left, start the executor and the maintenance loop."""
        self._loop = asyncio.get_running_loop()
        # Only tasks whose lease ran out: a task still `running` may belong to a live worker
        # (another server on this database, or a worker of a killed server finishing its task
        # and renewing its lease), and requeueing it would run it twice. A task orphaned by a
        # crash comes back once its lease ends (task_lease_s).
        await self.rt.run_io(recover_tasks, self.store)
        self.executor.start()
        self._maintenance = asyncio.create_task(self._maintain())

    async def stop(self) -> None:
        """Stop maintenance and the executor."""
        if self._maintenance:
            self._maintenance.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._maintenance
        await self.rt.run_io(self._stop_notifier)
        await self.rt.run_io(self.executor.stop)

    def queued(self, task_ids: list[str]) -> None:
        """Tell the executor about new tasks without blocking the caller (never the loop)."""
        # Celery's notify publishes to the broker synchronously, and a broker that accepts a
        # connection but never answers holds the publish forever. So no caller waits for it:
        # one notifier thread publishes, and a stuck broker stalls only that thread (not the
        # event loop, nor the I/O pool every request needs).
        if not task_ids:
            return
        self._start_notifier()
        try:
            self._pending.put_nowait(list(task_ids))
        except queue.Full:
            log.warning(
                "task notifications are backed up (%d pending); %d task(s) left to maintenance",
                MAX_PENDING_NOTIFY,
                len(task_ids),
            )

    def _start_notifier(self) -> None:
        with self._notifier_lock:
            if self._notifier is None:
                self._notifier = threading.Thread(
                    target=self._notify_forever, name="fp-notify", daemon=True
                )
                self._notifier.start()

    def _notify_forever(self) -> None:
        stopping = False
        while not stopping:
            ids = self._pending.get()
            if ids is None:
                return
            # Take what piled up meanwhile: one broker round trip for a burst of submits.
            while len(ids) < NOTIFY_BATCH:
                try:
                    more = self._pending.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True
                    break
                ids += more
            try:
                self.executor.notify(ids)
            except Exception:  # the tasks are in the table; maintenance republishes them
                log.exception("could not notify the executor of %d task(s)", len(ids))

    def _stop_notifier(self, timeout_s: float = 5.0) -> None:
        """Let the notifier send what is pending, then end it (a stuck broker: give up)."""
        with self._notifier_lock:
            thread, self._notifier = self._notifier, None
        if thread is None:
            return
        with contextlib.suppress(queue.Full):
            self._pending.put(None, timeout=timeout_s)
        thread.join(timeout_s)
        if thread.is_alive():
            log.warning("the executor did not take the last notifications in %.0f s", timeout_s)

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
            job = asyncio.ensure_future(self.rt.run_io(self._deliver))
            self._jobs.add(job)
            job.add_done_callback(self._jobs.discard)

    async def wait(self, company_id: str, task_id: str, timeout_s: float) -> dict[str, Any]:
        """The task's row once finished or when `timeout_s` runs out, whichever is first."""
        deadline = time.monotonic() + timeout_s
        event = self._events.setdefault(task_id, asyncio.Event())
        try:
            while True:
                row = await self.rt.run_io(load_task, self.store, company_id, task_id)
                remaining = deadline - time.monotonic()
                if row["status"] in FINISHED or remaining <= 0:
                    return row
                event.clear()
                # The event fires at once for local workers; other executors finish in another
                # process, so the table is polled (briefly: this is a client's latency).
                poll = 0.2 if self.rt.settings.executor == "local" else 0.02
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), timeout=min(remaining, poll))
        finally:
            self._events.pop(task_id, None)

    def _deliver(self) -> None:
        deliver_due(self.rt, self._render)

    def _render(self, row: dict[str, Any]) -> dict[str, Any]:
        return render_task(self.rt, row)

    async def _maintain(self) -> None:
        interval = self.rt.settings.maintenance_interval_s
        while True:
            try:
                await self.rt.run_io(recover_tasks, self.store)
                if self._celery is not None:
                    # Celery cannot see the table: a requeued task, or one whose message was
                    # never published, needs a new message.
                    await self.rt.run_io(self._celery.republish_stale, self.store)
                await self.rt.run_io(expire_tasks, self.store)
                await self.rt.run_io(self._deliver)
                await self.rt.run_io(self.rt.counters.purge)
            except Exception:  # maintenance must outlive a bad tick
                log.exception("task maintenance failed")
            await asyncio.sleep(interval)
