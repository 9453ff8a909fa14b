"""A task that outlives its lease keeps it (the worker renews it) and runs exactly once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from faceplane.settings import Settings
from support import authed_client


class SlowImage(BaseHTTPRequestHandler):
    body = b""
    calls = 0

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        type(self).calls += 1
        time.sleep(2.5)  # several leases long
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)


@pytest.fixture
def slow_url(astronaut: bytes) -> Iterator[str]:
    SlowImage.body, SlowImage.calls = astronaut, 0
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), SlowImage)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/slow.jpg"
    httpd.shutdown()


def test_long_task_keeps_its_lease_and_runs_once(tmp_path: Path, slow_url: str) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        workers=2,
        task_lease_s=1.0,
        maintenance_interval_s=0.1,
        fetch_allow_private=True,
    )
    with authed_client(settings) as client:
        task = client.post(
            "/v1/tasks", json={"operation": "detect", "input": {"image": {"url": slow_url}}}
        ).json()
        done = client.get(f"/v1/tasks/{task['request_id']}", params={"wait_s": 30}).json()
    assert done["status"] == "succeeded", done
    assert done["attempts"] == 1
    assert SlowImage.calls == 1
