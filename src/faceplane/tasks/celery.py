"""The distributed executor: Celery workers over Redis, state in the shared task table.

A Celery message carries only a task id. The worker claims that task in the database and
runs it with the same functions as the local workers (`claim_task`, `execute`), so the table
stays the truth: no result backend, and a duplicate or stale message is a harmless no-op.
Messages can be lost (a worker killed mid-task, a server crash between insert and publish);
the server's maintenance tick republishes queued tasks that nobody took (`republish_stale`).
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

from celery import Celery
from kombu.exceptions import ChannelError

from faceplane.runtime import Runtime
from faceplane.settings import Settings
from faceplane.store import Store
from faceplane.tasks.runner import claim_task, execute, stale_queued

log = logging.getLogger("faceplane.tasks")

TASK_NAME = "faceplane.run_task"
# A queued task untouched this long while the broker queue is empty has lost its message.
STALE_QUEUED_S = 5.0

# Per worker process (prefork children each build their own after the fork).
_worker_state: dict[str, Any] = {}


def make_celery(settings: Settings) -> Celery:
    """The Celery app of the server (publisher) and of `faceplane worker` (consumer)."""
    app = Celery("faceplane", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_ignore_result=True,  # the task table is the truth; no result backend
        task_acks_late=True,  # a message is acked after its task ran, not when received
        worker_prefetch_multiplier=1,  # a busy worker does not sit on tasks others could run
        task_serializer="json",
        accept_content=["json"],
        task_default_queue=settings.celery_queue,
        task_default_exchange=settings.celery_queue,
        task_default_routing_key=settings.celery_queue,
        # Publishing happens in a request: fail fast, maintenance republishes what was missed.
        task_publish_retry_policy={
            "max_retries": 2,
            "interval_start": 0,
            "interval_step": 0.2,
            "interval_max": 0.5,
        },
        broker_connection_retry_on_startup=True,
        broker_transport_options={"socket_connect_timeout": 5},
        worker_hijack_root_logger=False,
    )

    @app.task(name=TASK_NAME, ignore_result=True)
    def run_task(task_id: str) -> str | None:
        """Claim task `task_id` if it is still queued and run it; None when it was not."""
        return _run(settings, task_id)

    return app


def _worker_name() -> str:
    return f"celery-{socket.gethostname()}-{os.getpid()}"[:64]


def _run(settings: Settings, task_id: str) -> str | None:
    """The task body, in a worker process."""
    if not _worker_state:
        rt = _worker_state["rt"] = Runtime.open(settings)
        _worker_state["store"] = rt.store
    store: Store = _worker_state["store"]
    row = claim_task(store, task_id, _worker_name(), settings.task_lease_s)
    if row is None:
        # Already claimed, finished, canceled or unknown: a duplicate delivery does nothing.
        log.info("task %s is not queued; message ignored", task_id)
        return None
    return execute(_worker_state["rt"], row)


class CeleryExecutor:
    """The server's side of the distributed mode: publish task ids to the broker."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app = make_celery(settings)
        self._broker_down = False

    def start(self) -> None:
        """Check that the broker answers (tasks are still accepted when it does not)."""
        conn = self.app.connection_for_write()
        url = conn.as_uri()  # without the password
        try:
            with conn:
                conn.ensure_connection(max_retries=1, timeout=3)
        except Exception as exc:
            log.error(
                "Celery broker %s does not answer (%s): tasks stay queued until it does", url, exc
            )
            return
        log.info(
            "Celery executor: publishing to queue %r on %s; run `faceplane worker`",
            self.settings.celery_queue,
            url,
        )

    def notify(self, task_ids: list[str]) -> None:
        """Publish one message per task; a failure is logged and left to maintenance."""
        try:
            with self.app.producer_or_acquire() as producer:
                for task_id in task_ids:
                    self.app.send_task(TASK_NAME, args=[task_id], producer=producer)
        except Exception as exc:
            # The tasks are in the table; `republish_stale` sends them once the broker is back.
            log.warning("could not publish %d task(s) to the broker: %s", len(task_ids), exc)

    def alive(self) -> int:
        """Unknown: workers run elsewhere."""
        return -1

    def stop(self) -> None:
        """Close the broker connections."""
        self.app.close()

    def backlog(self) -> int | None:
        """Messages waiting in the broker queue, or None when the broker does not answer."""
        try:
            with self.app.connection_or_acquire() as conn:
                conn.ensure_connection(max_retries=1, timeout=3)
                try:
                    _, count, _ = conn.default_channel.queue_declare(
                        queue=self.settings.celery_queue, passive=True
                    )
                except ChannelError:
                    count = 0  # Redis keeps no empty list: a queue with no message is "missing"
        except Exception as exc:
            if not self._broker_down:  # once per outage, not once per maintenance tick
                log.warning("Celery broker does not answer: %s", exc)
            self._broker_down = True
            return None
        if self._broker_down:
            log.info("Celery broker answers again")
        self._broker_down = False
        return int(count)

    def republish_stale(self, store: Store) -> int:
        """Republish queued tasks nobody took (lost message, requeued after a dead worker)."""
        backlog = self.backlog()
        if backlog is None:
            return 0
        # With messages still waiting in the broker, an old queued task is most likely one of
        # them: republish only after a whole lease, so a long backlog is not flooded with
        # duplicates (each is a no-op, but each costs a delivery).
        older = STALE_QUEUED_S if backlog == 0 else max(STALE_QUEUED_S, self.settings.task_lease_s)
        ids = stale_queued(store, older)
        if ids:
            log.warning("republishing %d queued task(s) that no worker took", len(ids))
            self.notify(ids)
        return len(ids)
