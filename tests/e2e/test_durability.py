"""Durability with real process kills: no task is lost, none stays `running` forever."""

from __future__ import annotations

import base64
import os
import signal
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from live import Server, wait_until


@pytest.fixture
def photo(testdata: Path) -> str:
    data = (testdata / "faces/insightface/t1.jpg").read_bytes()
    return base64.b64encode(data).decode()


def submit_batch(base: str, photo: str, n: int, headers: dict[str, str]) -> list[str]:
    items = [
        {"operation": "crop", "input": {"image": {"base64": photo}}, "options": {"all_faces": True}}
        for _ in range(n)
    ]
    resp = httpx.post(base + "/v1/tasks:batch", json=items, timeout=60, headers=headers)
    resp.raise_for_status()
    return [t["request_id"] for t in resp.json()["tasks"]]


def states(server: Server, ids: list[str]) -> dict[str, Any]:
    return {
        i: httpx.get(f"{server.base}/v1/tasks/{i}", timeout=10, headers=server.headers).json()
        for i in ids
    }


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path / "data", FACEPLANE_TASK_LEASE_S="3")
    yield srv
    srv.stop()


def test_kill_9_of_the_server_loses_no_task(server: Server, photo: str) -> None:
    server.start()
    ids = submit_batch(server.base, photo, 12, server.headers)
    assert wait_until(
        lambda: sum(s["status"] == "succeeded" for s in states(server, ids).values()) >= 2,
        60,
    )
    server.kill9()
    server.start()  # same data folder: the task table is the truth
    assert wait_until(
        lambda: all(
            s["status"] in ("succeeded", "failed", "canceled") for s in states(server, ids).values()
        ),
        120,
    )
    final = states(server, ids)
    assert all(s["status"] == "succeeded" for s in final.values()), final
    assert all(1 <= s["attempts"] <= s["max_attempts"] for s in final.values())


class SlowImage(BaseHTTPRequestHandler):
    """Serves a photo after a pause, so a worker is surely mid-task when it is killed."""

    body = b""

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        time.sleep(1.5)
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)


def test_kill_9_of_a_worker_retries_its_task(tmp_path: Path, photo: str) -> None:
    SlowImage.body = base64.b64decode(photo)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), SlowImage)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/slow.jpg"
    server = Server(
        tmp_path / "data", FACEPLANE_TASK_LEASE_S="3", FACEPLANE_FETCH_ALLOW_PRIVATE="true"
    )
    try:
        server.start()
        items = [{"operation": "detect", "input": {"image": {"url": url}}} for _ in range(3)]
        resp = httpx.post(
            server.base + "/v1/tasks:batch", json=items, timeout=60, headers=server.headers
        )
        ids = [t["request_id"] for t in resp.json()["tasks"]]
        assert wait_until(
            lambda: any(s["status"] == "running" for s in states(server, ids).values()), 60
        )
        workers = server.children()
        assert workers, "no worker process found"
        for pid in workers:
            os.kill(pid, signal.SIGKILL)  # mid-download: the task it held is lost with it
        assert wait_until(
            lambda: all(s["status"] == "succeeded" for s in states(server, ids).values()), 120
        )
        final = states(server, ids)
        assert max(s["attempts"] for s in final.values()) >= 2  # the killed one ran again
    finally:
        server.stop()
        httpd.shutdown()
