"""A second server meets the first one's running tasks: on the same data folder it refuses to
start; on a shared database (or after a `kill -9` whose worker is still finishing its task) it
leaves a running task to the worker whose lease is alive. No task runs twice.

Tasks fetch a URL from a local endpoint that holds every request until the test releases it,
so they are surely running while the second server starts; the endpoint counts the fetches.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from databases import throwaway_postgres
from live import Server, free_port, wait_until

LOCK_REFUSED = 3  # faceplane.cli.EXIT_DATA_DIR_IN_USE
# Fetches wait on the held endpoint while a second server starts (many seconds on a loaded
# machine): private addresses allowed, and fetch timeouts well past that.
HELD_FETCH = {
    "FACEPLANE_FETCH_ALLOW_PRIVATE": "true",
    "FACEPLANE_FETCH_READ_TIMEOUT_S": "120",
    "FACEPLANE_FETCH_TOTAL_TIMEOUT_S": "120",
}


class HeldImage(BaseHTTPRequestHandler):
    """Counts each fetch of a path and answers a photo once `release` is set."""

    body: ClassVar[bytes] = b""
    hits: ClassVar[Counter[str]] = Counter()
    release: ClassVar[threading.Event] = threading.Event()
    lock: ClassVar[threading.Lock] = threading.Lock()

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        with self.lock:
            self.hits[self.path] += 1
        self.release.wait(60)
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)


@pytest.fixture
def endpoint(testdata: Path) -> Iterator[str]:
    HeldImage.body = (testdata / "faces/insightface/t1.jpg").read_bytes()
    HeldImage.hits = Counter()
    HeldImage.release = threading.Event()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), HeldImage)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    HeldImage.release.set()
    httpd.shutdown()


def submit(server: Server, url: str, n: int) -> list[str]:
    """`n` detect tasks, each on its own path of the held endpoint."""
    ids = []
    for i in range(n):
        task = {"operation": "detect", "input": {"image": {"url": f"{url}/{i}.jpg"}}}
        resp = httpx.post(server.base + "/v1/tasks", json=task, headers=server.headers, timeout=30)
        assert resp.status_code == 202, resp.text
        ids.append(resp.json()["request_id"])
    return ids


def tasks_of(server: Server, ids: list[str]) -> list[dict[str, Any]]:
    return [
        httpx.get(f"{server.base}/v1/tasks/{i}", headers=server.headers, timeout=10).json()
        for i in ids
    ]


def all_fetching(n: int) -> bool:
    """Every one of the `n` tasks is running: its worker is inside the fetch."""
    return wait_until(lambda: len(HeldImage.hits) == n, 60)


def finish_and_count(server: Server, ids: list[str]) -> list[dict[str, Any]]:
    """Let the fetches answer, wait for every task to end; each fetch path ran once."""
    HeldImage.release.set()
    assert wait_until(lambda: all(t["status"] == "succeeded" for t in tasks_of(server, ids)), 60), (
        tasks_of(server, ids)
    )
    final = tasks_of(server, ids)
    assert dict(HeldImage.hits) == {f"/{i}.jpg": 1 for i in range(len(ids))}  # none ran twice
    assert [t["attempts"] for t in final] == [1] * len(ids)
    return final


def test_a_second_server_on_the_same_data_folder_refuses_to_start(
    tmp_path: Path, endpoint: str
) -> None:
    first = Server(tmp_path / "data", FACEPLANE_WORKERS="2", **HELD_FETCH)
    try:
        first.start()
        ids = submit(first, endpoint, 2)
        assert all_fetching(2)
        env = {**first.env, "FACEPLANE_PORT": str(free_port())}
        second = subprocess.Popen(
            [sys.executable, "-m", "faceplane.cli", "serve"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            _, err = second.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(second.pid, signal.SIGKILL)
            second.communicate()
            pytest.fail("a second server started on a data folder another server is serving")
        message = err.decode()
        assert second.returncode == LOCK_REFUSED, message
        assert "another faceplane server" in message and str(tmp_path / "data") in message
        assert f"pid {first.proc.pid if first.proc else ''}" in message
        assert [t["status"] for t in tasks_of(first, ids)] == ["running", "running"]
        finish_and_count(first, ids)
    finally:
        first.stop()


def test_a_server_sharing_the_database_leaves_running_tasks_to_their_workers(
    tmp_path: Path, endpoint: str
) -> None:
    with throwaway_postgres() as url:
        shared = {"FACEPLANE_DATABASE_URL": url, **HELD_FETCH}
        first = Server(tmp_path / "a", FACEPLANE_WORKERS="2", **shared)
        second = Server(tmp_path / "b", FACEPLANE_WORKERS="1", **shared)
        try:
            first.start()
            ids = submit(first, endpoint, 2)
            assert all_fetching(2)
            second.key, second.headers = first.key, first.headers  # one database, one app
            second.start()  # its own data folder: no lock stops it; the leases must
            assert [(t["status"], t["attempts"]) for t in tasks_of(second, ids)] == [
                ("running", 1),
                ("running", 1),
            ]
            finish_and_count(first, ids)
        finally:
            second.stop()
            first.stop()


def test_a_restart_after_kill_9_leaves_a_task_to_the_worker_still_running_it(
    tmp_path: Path, endpoint: str
) -> None:
    server = Server(tmp_path / "data", FACEPLANE_WORKERS="1", **HELD_FETCH)
    killed = None
    try:
        server.start()
        ids = submit(server, endpoint, 1)
        assert all_fetching(1)
        assert server.proc is not None
        killed = server.proc.pid
        server.kill9()  # the worker lives on, inside its fetch, renewing the task's lease
        server.start()  # the same folder: the lock died with the killed server
        assert [(t["status"], t["attempts"]) for t in tasks_of(server, ids)] == [("running", 1)]
        finish_and_count(server, ids)  # the orphaned worker finished it, once
    finally:
        server.stop()
        if killed is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(killed, signal.SIGKILL)  # the killed server's worker, if still there
