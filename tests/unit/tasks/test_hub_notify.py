"""The task hub tells the executor about new tasks without ever blocking its caller.

The Celery executor publishes to the broker synchronously; a broker that accepts connections
but does not answer held every submitting route (and with it the event loop) for as long as
it stayed silent. These tests put a real Redis behind a gate that holds its bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from faceplane.runtime import Runtime
from faceplane.settings import Settings
from faceplane.tasks.hub import TaskHub

REDIS = ("127.0.0.1", 6379)
REDIS_DB = 15  # the test database of the distributed tests, away from database 0


class GatedRedis:
    """A TCP proxy to the local Redis that forwards nothing while its gate is closed."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self._socks: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(REDIS)
            self._socks += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                self.gate.wait()
                dst.sendall(data)

    def close(self) -> None:
        """Open the gate and drop every connection."""
        self.gate.set()
        self.server.close()
        for sock in self._socks:
            with contextlib.suppress(OSError):
                sock.close()


@pytest.fixture
def gated() -> Iterator[GatedRedis]:
    redis = pytest.importorskip("redis")
    try:
        redis.Redis(*REDIS, socket_connect_timeout=2).ping()
    except Exception as exc:
        pytest.skip(f"Redis at 127.0.0.1:6379 does not answer ({type(exc).__name__})")
    proxy = GatedRedis()
    yield proxy
    proxy.close()


def _celery_hub(tmp_path: Path, port: int, queue: str) -> TaskHub:
    settings = Settings(
        data_dir=tmp_path / "data",
        executor="celery",
        broker_url=f"redis://127.0.0.1:{port}/{REDIS_DB}",
        celery_queue=queue,
    )
    return TaskHub(Runtime.open(settings))


def _queue_length(queue: str) -> int:
    import redis

    return int(redis.Redis(*REDIS, db=REDIS_DB).llen(queue))


def _drop(queue: str) -> None:
    import redis

    r = redis.Redis(*REDIS, db=REDIS_DB)
    r.delete(queue, f"_kombu.binding.{queue}")


def test_queued_returns_at_once_while_the_broker_is_silent_and_the_message_still_arrives(
    tmp_path: Path, gated: GatedRedis
) -> None:
    queue = f"faceplane-test-notify-{uuid.uuid4().hex[:8]}"
    hub = _celery_hub(tmp_path, gated.port, queue)
    took: list[float] = []

    async def submit_then_tick() -> None:
        # As a route does: on the event loop, right after the task row was written.
        t0 = time.monotonic()
        hub.queued(["task-a", "task-b"])
        took.append(time.monotonic() - t0)
        # The loop stays free meanwhile: a timer due in 50 ms fires on time.
        t1 = time.monotonic()
        await asyncio.sleep(0.05)
        took.append(time.monotonic() - t1)

    # The loop runs in its own thread so that a blocking `queued` fails this test instead of
    # hanging it.
    runner = threading.Thread(target=asyncio.run, args=(submit_then_tick(),), daemon=True)
    try:
        runner.start()
        runner.join(timeout=3)
        assert not runner.is_alive(), "hub.queued blocked the event loop on a silent broker"
        assert took[0] < 0.5 and took[1] < 0.5, took
        assert _queue_length(queue) == 0  # nothing reached the broker yet: the gate is closed
        gated.gate.set()
        deadline = time.monotonic() + 10
        while _queue_length(queue) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _queue_length(queue) == 2  # both tasks were published once the broker answered
    finally:
        gated.gate.set()
        asyncio.run(hub.stop())
        hub.rt.close()
        _drop(queue)


def test_a_burst_queued_behind_a_silent_broker_is_all_published_when_it_answers(
    tmp_path: Path, gated: GatedRedis
) -> None:
    queue = f"faceplane-test-notify-{uuid.uuid4().hex[:8]}"
    hub = _celery_hub(tmp_path, gated.port, queue)
    try:
        for i in range(50):
            hub.queued([f"task-{i}"])  # the broker is held: these pile up behind the first
        gated.gate.set()
        asyncio.run(hub.stop())  # the notifier sends what is pending before it ends
        assert _queue_length(queue) == 50
    finally:
        gated.gate.set()
        hub.rt.close()
        _drop(queue)
