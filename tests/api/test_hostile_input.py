"""Hostile input in process (issue 11, item 11): every case answers 4xx with a catalogue code.

The cases that may crash a process (deep JSON, lone surrogates) are run against a real server
in tests/e2e/test_hostile_input.py; these are the rest, on the in-process app.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import re
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from faceplane.app import create_app
from faceplane.cli import main as cli_main
from faceplane.services import accounts
from faceplane.settings import Settings

BIG = 10**20


class Caller:
    """A company with an admin's token headers and an app's KEY."""

    def __init__(self, client: TestClient) -> None:
        rt = client.app.state.rt  # type: ignore[attr-defined]
        company = accounts.create_company(rt, "hostile")
        accounts.create_user(rt, company["id"], "admin@hostile.test", "hostile password", "admin")
        tokens = accounts.login(rt, "admin@hostile.test", "hostile password", 600, 600)
        self.admin = {"Authorization": f"Bearer {tokens['access_token']}"}
        self.app, self.key = accounts.create_app(rt, company["id"], "hostile", 100_000)
        self.keyed = {"X-API-Key": self.key}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("hostile") / "data")
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def caller(client: TestClient) -> Caller:
    return Caller(client)


def error(resp: Any, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()["error"]
    assert body["code"] == code, resp.text
    return dict(body)


def signed(caller: Caller, **override: Any) -> dict[str, Any]:
    ts = str(int(time.time()))
    nonce = uuid.uuid4().hex
    sig = accounts.sign(caller.key, accounts.signed_message("GET", "/v1/me", ts, nonce, b""))
    headers: dict[str, Any] = {
        "X-Faceplane-App-Id": caller.app["app_id"],
        "X-Faceplane-Timestamp": ts,
        "X-Faceplane-Nonce": nonce,
        "X-Faceplane-Signature": sig,
    }
    return {**headers, **override}


def test_a_non_ascii_blob_signature_is_signature_invalid(client: TestClient) -> None:
    for sig in ("%C3%A9" * 32, "%E2%98%83", "%FF%FE"):
        resp = client.get(
            f"/v1/blobs/tasks/x/result.json?company_id=c&expires=9999999999&sig={sig}"
        )
        error(resp, 401, "SIGNATURE_INVALID")


def test_a_non_ascii_request_signature_is_signature_invalid(
    client: TestClient, caller: Caller
) -> None:
    # Header values reach the app as latin-1 text: é is one character, not two bytes.
    for sig in ("é".encode("latin-1") * 64, "\xff".encode("latin-1"), "ü".encode("latin-1")):
        resp = client.get("/v1/me", headers=signed(caller, **{"X-Faceplane-Signature": sig}))
        error(resp, 401, "SIGNATURE_INVALID")
    assert client.get("/v1/me", headers=signed(caller)).status_code == 200


@pytest.mark.parametrize("timestamp", ["inf", "-inf", "Infinity", "1e400", "nan", "9" * 5000])
def test_a_non_finite_or_huge_request_timestamp_is_signature_invalid(
    client: TestClient, caller: Caller, timestamp: str
) -> None:
    resp = client.get("/v1/me", headers=signed(caller, **{"X-Faceplane-Timestamp": timestamp}))
    error(resp, 401, "SIGNATURE_INVALID")


def photo_error(resp: Any) -> str:
    found = re.search(r"<err_code>(.*?)</err_code>", resp.text)
    assert found, resp.text
    return found.group(1)


def test_a_non_ascii_photo_sign_data_is_invalid_sign_data(
    client: TestClient, caller: Caller
) -> None:
    app_id = caller.app["app_id"]
    for sign in ("é" * 64, "\u2603", "\xff\xfe"):
        form = {"APP_ID": app_id, "SIGN_DATA": sign, "DATA": "<image_process_call/>"}
        assert photo_error(client.post("/compat/photo/addtask", data=form)) == "613"
        files = {k: (None, v.encode()) for k, v in form.items()}
        assert photo_error(client.post("/compat/photo/addtask", files=files)) == "613"


def test_limits_of_10_to_the_20_are_invalid_argument(client: TestClient, caller: Caller) -> None:
    for body in ({"name": "big", "rate_limit": BIG}, {"name": "big", "quota": BIG}):
        details = error(
            client.post("/v1/apps", json=body, headers=caller.admin), 400, "INVALID_ARGUMENT"
        )
        assert details["details"]["maximum"] == accounts.MAX_LIMIT
    app_id = caller.app["app_id"]
    for patch in ({"rate_limit": BIG}, {"quota": BIG}, {"rate_limit": -(BIG)}):
        resp = client.patch(f"/v1/apps/{app_id}", json=patch, headers=caller.admin)
        error(resp, 400, "INVALID_ARGUMENT")
    # The largest value the column holds is accepted, and the app still works.
    at_max = {"rate_limit": accounts.MAX_LIMIT, "quota": accounts.MAX_LIMIT}
    resp = client.patch(f"/v1/apps/{app_id}", json=at_max, headers=caller.admin)
    assert resp.status_code == 200, resp.text
    assert client.get("/v1/me", headers=caller.keyed).status_code == 200


@pytest.mark.parametrize(
    "args",
    [
        ["create", "--company", "big", "--rate-limit", str(BIG)],
        ["create", "--company", "big", "--quota", str(BIG)],
        ["limits", "app_x", "--rate-limit", str(BIG)],
        ["limits", "app_x", "--quota", str(BIG)],
        ["limits", "app_x", "--quota", "-2"],
    ],
)
def test_the_cli_refuses_limits_the_database_cannot_hold(
    args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setenv("FACEPLANE_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(SystemExit) as exited:
        cli_main(["admin", "app", *args])
    assert exited.value.code == 2
    assert f"to {accounts.MAX_LIMIT}" in capsys.readouterr().err


def test_an_oz_session_token_of_5000_digits_is_oz_container_error(
    client: TestClient, caller: Caller, astronaut: bytes
) -> None:
    digest = hashlib.sha256(astronaut).hexdigest()
    for token in ("9" * 5000 + ".ab.cd", "9" * 13 + ".ab.cd", "١٢٣.ab.cd"):
        payload = json.dumps({"session_token": token, "media:sha256": {"a.jpg": digest}}).encode()
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("payload.json", payload)
            zf.writestr("signature", hmac.new(token.encode(), payload, "sha256").hexdigest())
            zf.writestr("a.jpg", astronaut)
        resp = client.post(
            "/compat/oz/api/folders/",
            content=buf.getvalue(),
            headers={**caller.keyed, "Content-Type": "application/octet-stream"},
        )
        assert resp.status_code == 400, resp.text
        assert resp.json()["error_code"] == 14, resp.text


def test_json_with_too_many_values_is_payload_too_large(client: TestClient, caller: Caller) -> None:
    # 1.2 MB of `{},` is 400,000 objects: before, ~30 MB of them in memory for nothing.
    body = ("[" + "{}," * 400_000 + "{}]").encode()
    for path in ("/v1/tasks:batch", "/v1/auth/login"):
        resp = client.post(
            path, content=body, headers={**caller.keyed, "Content-Type": "application/json"}
        )
        details = error(resp, 413, "PAYLOAD_TOO_LARGE")["details"]
        assert details == {"reason": "items", "max_items": 200_000}


PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432"


@pytest.fixture(scope="module")
def pg_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The app on a throw-away PostgreSQL database (skipped, loudly, without PostgreSQL)."""
    from sqlalchemy import create_engine, text

    admin = create_engine(f"{PG_URL}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            name = f"faceplane_test_{uuid.uuid4().hex[:12]}"
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        pytest.skip(f"POSTGRESQL NOT TESTED: 127.0.0.1:5432 does not answer ({exc!r:.80})")
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("hostile-pg") / "data",
        database_url=f"{PG_URL}/{name}",
        workers=0,
    )
    try:
        with TestClient(create_app(settings), raise_server_exceptions=False) as c:
            yield c
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_a_nul_character_in_client_text_is_invalid_argument_on_postgresql(
    pg_client: TestClient,
) -> None:
    # PostgreSQL stores no NUL in text: before, each of these failed in the database (500).
    keyed = Caller(pg_client).keyed
    json_body = {**keyed, "Content-Type": "application/json"}
    cases = [
        pg_client.get("/v1/tasks/a%00b", headers=keyed),
        pg_client.get("/v1/collections/a%00b", headers=keyed),
        pg_client.post("/v1/collections", content=b'{"name": "a\\u0000b"}', headers=json_body),
        pg_client.post(
            "/compat/ailab/api/face/group/create", data={"group_id": "a\x00b"}, headers=keyed
        ),
        pg_client.post(
            "/compat/ailab/api/face/group/create",
            files={"group_id": (None, b"a\x00b")},
            headers=keyed,
        ),
    ]
    for resp in cases:
        assert 400 <= resp.status_code < 500, resp.text
    for resp in cases[:3]:
        assert error(resp, 400, "INVALID_ARGUMENT")["details"]["reason"] == "nul"


def test_json_in_form_fields_goes_through_the_same_bounds(
    client: TestClient, caller: Caller, astronaut: bytes
) -> None:
    deep = "[" * 1000 + "]" * 1000
    resp = client.post(
        "/v1/tasks",
        data={"operation": "detect", "options": deep},
        files={"image": ("a.jpg", astronaut)},
        headers=caller.keyed,
    )
    details = error(resp, 400, "INVALID_ARGUMENT")["details"]
    assert details == {"reason": "depth", "field": "options", "max_depth": 64}
    resp = client.post(
        "/v1/tasks",
        data={"operation": "detect", "options": '{"x": "\\ud800"}'},
        files={"image": ("a.jpg", astronaut)},
        headers=caller.keyed,
    )
    assert error(resp, 400, "ENCODING_ERROR")["details"]["field"] == "options"


def test_an_audit_cursor_of_30_digits_is_invalid_argument(
    client: TestClient, caller: Caller
) -> None:
    resp = client.get("/v1/admin/audit", params={"cursor": "9" * 30}, headers=caller.admin)
    error(resp, 400, "INVALID_ARGUMENT")


def test_a_task_cursor_abc_is_invalid_argument(client: TestClient, caller: Caller) -> None:
    resp = client.get("/v1/tasks", params={"cursor": "abc"}, headers=caller.keyed)
    error(resp, 400, "INVALID_ARGUMENT")


def test_a_task_cursor_hiding_a_lone_surrogate_is_a_4xx(client: TestClient, caller: Caller) -> None:
    hidden = base64.urlsafe_b64encode(b'[1.0,"\\ud800"]').decode().rstrip("=")
    resp = client.get("/v1/tasks", params={"cursor": hidden}, headers=caller.keyed)
    assert 400 <= resp.status_code < 500, resp.text
