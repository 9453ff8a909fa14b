"""The server's side of tasks: the executor, waiters for long polls, and maintenance."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections import Counter
from typing import TYPE_CHECKING, Any, Protocol

from faceplane.runtime import Runtime
from faceplane.services.tasks import load_task, render_task
from faceplane.tasks.runner import expire_tasks, recover_tasks
from faceplane.tasks.state import FINISHED
from faceplane.tasks.webhooks import claim_due, deliver_claim

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
        # Webhook deliveries in flight (each on the I/O pool) -> the company of its task.
        self._deliveries: dict[asyncio.Future[None], str] = {}
        self._claiming = asyncio.Lock()
        self._stopping = False
        self._kick_pending = False  # a pass is already waiting to claim: one is enough
        # Deliveries take I/O threads for up to a deadline each: leave most to requests.
        self._delivery_slots = max(
            1, min(settings.webhook_max_concurrent, settings.io_threads // 2)
        )
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
        """Stop maintenance, let deliveries in flight end (each by its deadline), stop the
        executor."""
        self._stopping = True
        if self._maintenance:
            self._maintenance.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._maintenance
        pending = [*self._jobs, *self._deliveries]
        if pending:
            await asyncio.wait(pending, timeout=self.rt.settings.webhook_timeout_s + 5)
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
        self._kick()

    def _kick(self) -> None:
        """Claim and start due deliveries soon, without waiting for the next tick."""
        if self._maintenance is None or self._stopping or self._kick_pending:
            return
        self._kick_pending = True
        job = asyncio.ensure_future(self._schedule_deliveries())
        self._jobs.add(job)
        job.add_done_callback(self._jobs.discard)

    async def wait(self, company_id: str, task_id: str, timeout_s: float) -> dict[str, Any]:
        """The task's row once finished or when `timeout_s` runs out, whichever is first."""
        deadline = time.monotonic() + timeout_s
        event = self._events.setdefault(task_id, asyncio.Event())
        try:
            while True:
                row = await self.rt.run_io(load_task, self.rt, company_id, task_id)
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

    async def _schedule_deliveries(self) -> None:
        """Claim as many due deliveries as there are free slots and start each on the I/O
        pool; nothing here waits for a delivery (a slow endpoint holds only its slot)."""
        try:
            async with self._claiming:  # one claimant at a time: the slot count stays true
                self._kick_pending = False
                free = self._delivery_slots - len(self._deliveries)
                if free <= 0 or self._stopping:
                    return
                busy = Counter(self._deliveries.values())
                claims = await self.rt.run_io(claim_due, self.rt, free, busy)
                for claim in claims:
                    job = asyncio.ensure_future(
                        self.rt.run_io(deliver_claim, self.rt, claim, self._render)
                    )
                    self._deliveries[job] = claim.row["company_id"]
                    job.add_done_callback(self._delivered)
        except Exception:  # the next tick tries again
            log.exception("claiming webhook deliveries failed")

    def _delivered(self, job: asyncio.Future[None]) -> None:
        self._deliveries.pop(job, None)
        if not job.cancelled() and job.exception() is not None:
            # Its hold runs out and it is claimed again, as the next attempt.
            log.error("webhook delivery failed", exc_info=job.exception())
        self._kick()  # a slot is free: more may be due

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
                await self._schedule_deliveries()
                await self.rt.run_io(self.rt.counters.purge)
            except Exception:  # maintenance must outlive a bad tick
                log.exception("task maintenance failed")
            await asyncio.sleep(interval)
