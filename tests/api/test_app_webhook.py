"""An app's default webhook: its tasks that name none are delivered there, signed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from fastapi.testclient import TestClient

from faceplane.app import create_app
from faceplane.services import accounts
from faceplane.settings import Settings


class Hook(BaseHTTPRequestHandler):
    got: ClassVar[list[tuple[dict[str, str], bytes]]] = []

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.got.append((dict(self.headers), body))
        self.send_response(204)
        self.end_headers()


@pytest.fixture
def hook() -> Iterator[str]:
    Hook.got = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/app-hook"
    httpd.shutdown()


def test_tasks_without_a_webhook_use_their_apps(
    tmp_path: Path, hook: str, astronaut: bytes
) -> None:
    settings = Settings(
        data_dir=tmp_path / "data", workers=1, fetch_allow_private=True, maintenance_interval_s=0.1
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        rt = c.app.state.rt  # type: ignore[attr-defined]
        company = accounts.create_company(rt, "hooked")
        accounts.create_user(rt, company["id"], "boss@hooked.test", "long enough pw", "admin")
        token = accounts.login(rt, "boss@hooked.test", "long enough pw", 600, 600)
        app, key = accounts.create_app(rt, company["id"], "app", 1000)
        patched = c.patch(
            f"/v1/apps/{app['app_id']}",
            json={"webhook_url": hook},
            headers={"Authorization": f"Bearer {token['access_token']}"},
        )
        assert patched.status_code == 200, patched.text
        secret = patched.json()["webhook_secret"]
        task = c.post(
            "/v1/tasks",
            headers={"X-API-Key": key},
            json={
                "operation": "detect",
                "input": {"image": {"base64": base64.b64encode(astronaut).decode()}},
            },
        ).json()
        deadline = time.time() + 15
        while time.time() < deadline and not Hook.got:
            time.sleep(0.1)
    assert Hook.got, "the app's webhook was not called"
    headers, body = Hook.got[0]
    assert headers["X-Faceplane-Task-Id"] == task["request_id"]
    expected = hmac.new(
        secret.encode(), headers["X-Faceplane-Timestamp"].encode() + b"." + body, hashlib.sha256
    ).hexdigest()
    assert headers["X-Faceplane-Signature"] == "v1=" + expected
