"""What the fuzz runs found, each kept as a test against a real `faceplane serve` on loopback."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from live import Server

PASSWORD = "findings-password-1"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("findings"), FACEPLANE_WORKERS="0")
    try:
        srv.start()
        yield srv
    finally:
        srv.stop()


def _user_token(srv: Server) -> str:
    """An admin user of the server's company, made by the admin CLI, logged in over HTTP."""
    subprocess.run(
        [
            *(sys.executable, "-m", "faceplane.cli", "admin", "user", "create"),
            *("--company", "e2e", "--email", "findings@example.com", "--role", "admin"),
            *("--password", PASSWORD),
        ],
        env=srv.env,
        check=True,
        capture_output=True,
    )
    login = {"email": "findings@example.com", "password": PASSWORD}
    resp = httpx.post(srv.base + "/v1/auth/login", json=login, timeout=30)
    assert resp.status_code == 200, resp.text
    return str(resp.json()["access_token"])


def test_patching_an_app_with_a_null_name_or_rate_limit_is_an_invalid_argument(
    server: Server,
) -> None:
    # schemathesis found PATCH /v1/apps/{id} {"name": null} answering 500 (NOT NULL constraint):
    # null reached the UPDATE. name, status and rate_limit always hold a value.
    auth = {"Authorization": f"Bearer {_user_token(server)}"}
    app = httpx.post(server.base + "/v1/apps", json={"name": "a"}, headers=auth, timeout=30)
    assert app.status_code == 201, app.text
    url = f"{server.base}/v1/apps/{app.json()['app_id']}"
    for field in ("name", "rate_limit", "status"):
        resp = httpx.patch(url, json={field: None}, headers=auth, timeout=30)
        assert resp.status_code == 400, (field, resp.text)
        assert resp.json()["error"]["code"] == "INVALID_ARGUMENT"
    # Nulls that mean something still work: no quota, no expiry, no webhook.
    resp = httpx.patch(url, json={"quota": None, "expires_at": None}, headers=auth, timeout=30)
    assert resp.status_code == 200, resp.text
    after = httpx.get(server.base + "/v1/apps", headers=auth, timeout=30).json()["apps"]
    mine = next(a for a in after if a["app_id"] == app.json()["app_id"])
    assert mine["name"] == "a" and mine["rate_limit"] >= 1
    assert httpx.get(server.base + "/v1/health", timeout=10).status_code == 200


def test_a_raw_image_body_on_a_route_that_takes_no_image_is_a_client_error(
    server: Server,
) -> None:
    # The fuzz found POST /compat/ailab/api/face/group/create with Content-Type image/jpeg
    # answering 500: the raw body went to the route's first image field, and it has none.
    for path in ("/compat/ailab/api/face/group/create", "/compat/ailab/api/face/user/delete"):
        for ctype in ("image/jpeg", "application/octet-stream"):
            headers = {**server.headers, "Content-Type": ctype}
            resp = httpx.post(server.base + path, content=b"\xff\xd8\xff", headers=headers)
            assert resp.status_code == 400, (path, ctype, resp.text)
            body = resp.json()
            assert body["error_detail"]["code"] == "ERROR_PARAMETERS", body
            assert body["request_id"] == resp.headers["x-request-id"]
    assert httpx.get(server.base + "/v1/health", timeout=10).status_code == 200


def test_an_oz_folder_whose_metadata_holds_nan_is_refused_not_stored(
    server: Server, testdata: Path
) -> None:
    # The fuzz found a folder upload with {"folder:meta_data": {"a": NaN}} stored and then
    # answered 500: Python's parser takes NaN, the answer's JSON renderer does not.
    photo = (testdata / "faces/insightface/t1.jpg").read_bytes()
    for value in ("NaN", "Infinity", "-Infinity"):
        resp = httpx.post(
            server.base + "/compat/oz/api/folders/",
            headers=server.headers,
            files={"photo1": ("photo1.jpg", photo, "image/jpeg")},
            data={"payload": json.dumps({"folder:meta_data": {"a": float(value)}})},
            timeout=30,
        )
        assert resp.status_code == 400, (value, resp.text)
        assert resp.json()["error_code"] == 4 and "folder:meta_data" in resp.text
    ok = httpx.post(
        server.base + "/compat/oz/api/folders/",
        headers=server.headers,
        files={"photo1": ("photo1.jpg", photo, "image/jpeg")},
        data={"payload": '{"folder:meta_data": {"a": 1.5}}'},
        timeout=30,
    )
    assert ok.status_code == 201 and ok.json()["meta_data"] == {"a": 1.5}, ok.text
