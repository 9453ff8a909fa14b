"""Issue 11 items 7 and 9 against a real server: clients cannot lift their limits, a user's
caps bind its token and its apps, signatures cover the query, and Pho.to SIGN_DATA is good once
per key however late the replay comes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from faceplane.services import accounts
from live import Server

PASSWORD = "correct horse battery"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    # No workers: accepted tasks stay queued; only the intake's answers matter here.
    srv = Server(tmp_path / "data", FACEPLANE_WORKERS="0")
    srv.start()
    yield srv
    srv.stop()


def make_user(server: Server, email: str, role: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "faceplane.cli", "admin", "user", "create", "--company", "e2e",
         "--email", email, "--role", role, "--password", PASSWORD, "--json"],
        env=server.env, check=True, capture_output=True,
    )  # fmt: skip


def login(server: Server, email: str) -> dict[str, str]:
    resp = httpx.post(
        server.base + "/v1/auth/login", json={"email": email, "password": PASSWORD}, timeout=30
    )
    assert resp.status_code == 200, resp.text
    return {"Authorization": "Bearer " + resp.json()["access_token"]}


def user_id(server: Server, headers: dict[str, str]) -> str:
    return str(httpx.get(server.base + "/v1/me", headers=headers, timeout=10).json()["user_id"])


def err(resp: httpx.Response) -> str:
    return str(resp.json()["error"]["code"])


def submit(server: Server, headers: dict[str, str], photo: str) -> httpx.Response:
    task = {"operation": "detect", "input": {"image": {"base64": photo}}}
    return httpx.post(server.base + "/v1/tasks", json=task, headers=headers, timeout=30)


def test_a_client_cannot_lift_the_caps_its_admin_set(server: Server, testdata: Path) -> None:
    make_user(server, "boss@e2e.test", "admin")
    make_user(server, "client@e2e.test", "client")
    boss, client = login(server, "boss@e2e.test"), login(server, "client@e2e.test")
    capped = httpx.patch(
        f"{server.base}/v1/admin/users/{user_id(server, client)}",
        json={"rate_limit": 50, "quota": 1},
        headers=boss,
        timeout=10,
    )
    assert capped.status_code == 200, capped.text
    assert (capped.json()["rate_limit"], capped.json()["quota"]) == (50, 1)
    # A client may not cap itself (nor uncap itself): the route is the admin's.
    own = httpx.patch(
        f"{server.base}/v1/admin/users/{user_id(server, client)}",
        json={"quota": None},
        headers=client,
        timeout=10,
    )
    assert own.status_code == 403 and err(own) == "AUTH_FORBIDDEN"

    # The attack of the issue: a client asks for an app with a billion requests, no quota.
    lifted = httpx.post(
        server.base + "/v1/apps",
        json={"name": "mine", "rate_limit": 1_000_000_000, "quota": None},
        headers=client,
        timeout=10,
    )
    assert lifted.status_code == 403 and err(lifted) == "AUTH_FORBIDDEN"
    # Without limits it gets its user's caps.
    made = httpx.post(server.base + "/v1/apps", json={"name": "mine"}, headers=client, timeout=10)
    assert made.status_code == 201, made.text
    assert (made.json()["rate_limit"], made.json()["quota"]) == (50, 1)
    # An admin still sets any limits, on a new app and on the client's app.
    big = httpx.post(
        server.base + "/v1/apps",
        json={"name": "big", "rate_limit": 1000, "quota": 500},
        headers=boss,
        timeout=10,
    )
    assert big.status_code == 201 and big.json()["quota"] == 500
    raised = httpx.patch(
        f"{server.base}/v1/apps/{made.json()['app_id']}",
        json={"quota": 9},
        headers=boss,
        timeout=10,
    )
    assert raised.status_code == 200 and raised.json()["quota"] == 9

    # The user's token spends the user's quota: one detect, then 429 with the quota code.
    photo = base64.b64encode((testdata / "faces/insightface/t1.jpg").read_bytes()).decode()
    assert submit(server, client, photo).status_code in (200, 201, 202)
    over = submit(server, client, photo)
    assert over.status_code == 429 and err(over) == "QUOTA_EXCEEDED"
    # The app's own quota (9, set by the admin) does not lift its owner's cap of 1 either:
    # the owner's credits are spent.
    app_over = submit(server, {"X-API-Key": made.json()["key"]}, photo)
    assert app_over.status_code == 429 and err(app_over) == "QUOTA_EXCEEDED"
    # The admin lifts the cap: the client works again.
    httpx.patch(
        f"{server.base}/v1/admin/users/{user_id(server, client)}",
        json={"quota": None},
        headers=boss,
        timeout=10,
    )
    assert submit(server, client, photo).status_code in (200, 201, 202)


def signed(key: str, app_id: str, method: str, path: str, query: str) -> dict[str, str]:
    ts, nonce = str(int(time.time())), uuid.uuid4().hex
    message = accounts.signed_message(method, path, ts, nonce, b"", query)
    return {
        "X-Faceplane-App-Id": app_id,
        "X-Faceplane-Timestamp": ts,
        "X-Faceplane-Nonce": nonce,
        "X-Faceplane-Signature": accounts.sign(key, message),
    }


def admin_app(server: Server) -> dict[str, Any]:
    make_user(server, "owner@e2e.test", "admin")
    resp = httpx.post(
        server.base + "/v1/apps", json={"name": "signer"}, headers=login(server, "owner@e2e.test"),
        timeout=10,
    )  # fmt: skip
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def test_a_signed_request_with_another_query_is_refused(server: Server) -> None:
    app = admin_app(server)
    headers = signed(app["key"], app["app_id"], "GET", "/v1/tasks", "limit=1")
    ok = httpx.get(server.base + "/v1/tasks?limit=1", headers=headers, timeout=10)
    assert ok.status_code == 200, ok.text
    headers = signed(app["key"], app["app_id"], "GET", "/v1/tasks", "limit=1")
    altered = httpx.get(server.base + "/v1/tasks?limit=2", headers=headers, timeout=10)
    assert altered.status_code == 401 and err(altered) == "SIGNATURE_INVALID"


def test_a_photo_sign_data_replay_is_refused_after_the_old_window(server: Server) -> None:
    app = admin_app(server)
    data = (
        '<image_process_call><image_url order="1">https://example.com/face.jpg</image_url>'
        '<methods_list><method order="1"><name>face_detection</name><params></params></method>'
        "</methods_list></image_process_call>"
    )
    sign = hmac.new(app["key"].encode(), data.encode(), hashlib.sha256).hexdigest()
    form = {"APP_ID": app["app_id"], "SIGN_DATA": sign, "DATA": data}
    first = httpx.post(server.base + "/compat/photo/addtask", data=form, timeout=30)
    # Accepted as signed (the host does not resolve here: the intake's -2 comes after that).
    assert b"<err_code>613</err_code>" not in first.content, first.text
    assert b"request_id" in first.content
    # Age everything the server remembers by an hour, as if 20 minutes (the old window) and
    # more had passed: an expiring replay token would be forgotten now.
    with sqlite3.connect(Path(server.env["FACEPLANE_DATA_DIR"]) / "faceplane.db") as db:
        db.execute("UPDATE nonces SET expires_at = expires_at - 3600")
        db.execute("UPDATE data_signatures SET created_at = created_at - 3600")
    replay = httpx.post(server.base + "/compat/photo/addtask", data=form, timeout=30)
    assert b"<err_code>613</err_code>" in replay.content, replay.text
    # Rotating the key forgets the old key's signatures: the same DATA signed anew is accepted.
    rotated = httpx.post(
        f"{server.base}/v1/apps/{app['app_id']}/rotate",
        headers=login(server, "owner@e2e.test"),
        timeout=10,
    )
    new_sign = hmac.new(rotated.json()["key"].encode(), data.encode(), hashlib.sha256).hexdigest()
    again = httpx.post(
        server.base + "/compat/photo/addtask", data={**form, "SIGN_DATA": new_sign}, timeout=30
    )
    assert b"<err_code>613</err_code>" not in again.content, again.text
