"""Access control: credentials on every route, roles, tenants, rate limits, quotas, audit."""

from __future__ import annotations

import io
import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import select

from faceplane.app import create_app
from faceplane.services import accounts
from faceplane.settings import Settings
from faceplane.store.db import users
from support import cli_app_key

PUBLIC = {"/v1/health", "/v1/auth/login", "/v1/auth/refresh", "/v1/blobs/{key}"}


@pytest.fixture(scope="module")
def app_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("access") / "data")
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


class Tenant:
    """A company with an admin, an operator, a client, their tokens, and an app key."""

    def __init__(self, client: TestClient, name: str) -> None:
        rt = client.app.state.rt  # type: ignore[attr-defined]
        self.company = accounts.create_company(rt, name)
        cid = self.company["id"]
        self.tokens = {}
        for role in accounts.ROLES:
            email = f"{role}@{name}.test"
            accounts.create_user(rt, cid, email, "correct horse battery", role)
            self.tokens[role] = accounts.login(rt, email, "correct horse battery", 600, 600)
        self.app, self.key = accounts.create_app(rt, cid, "app", 100_000)

    def as_(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]['access_token']}"}

    @property
    def keyed(self) -> dict[str, str]:
        return {"X-API-Key": self.key}


@pytest.fixture(scope="module")
def acme(app_client: TestClient) -> Tenant:
    return Tenant(app_client, "acme")


@pytest.fixture(scope="module")
def globex(app_client: TestClient) -> Tenant:
    return Tenant(app_client, "globex")


def protected_routes(client: TestClient) -> list[tuple[str, str]]:
    """Every documented route and method but the public ones (the OpenAPI document is the
    list a client sees, so nothing can hide from this test)."""
    paths = client.get("/openapi.json").json()["paths"]
    # The vendor families take their vendors' credentials and error shapes: their own tests.
    return [
        (m.upper(), p)
        for p, ops in paths.items()
        if p not in PUBLIC and not p.startswith("/compat/")
        for m in ops
    ]


def fill(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "00000000000000000000000000000000", path)


def call(client: TestClient, method: str, path: str, headers: dict[str, str]) -> Any:
    return client.request(method, fill(path), headers=headers, json={})


def test_every_protected_route_is_listed(app_client: TestClient) -> None:
    routes = protected_routes(app_client)
    assert len(routes) >= 30
    assert ("POST", "/v1/detect") in routes and ("GET", "/v1/admin/audit") in routes


def test_every_route_refuses_missing_and_invalid_credentials(app_client: TestClient) -> None:
    cases = {
        "AUTH_MISSING": {},
        "AUTH_INVALID": {"Authorization": "Bearer fpk_not-a-key"},
        "AUTH_INVALID ": {"X-Forensic-Access-Token": "fpt_not-a-token"},
    }
    for method, path in protected_routes(app_client):
        for code, headers in cases.items():
            resp = call(app_client, method, path, headers)
            assert resp.json()["error"]["code"] == code.strip(), (method, path, code)
            assert resp.status_code == 401


def test_every_route_refuses_an_expired_token(app_client: TestClient, acme: Tenant) -> None:
    rt = app_client.app.state.rt  # type: ignore[attr-defined]
    store = rt.store
    with store.db.connect() as conn:
        uid = conn.execute(select(users.c.id).where(users.c.email == "admin@acme.test")).scalar()
    expired = accounts._issue(store, uid, -1, 600)["access_token"]
    for method, path in protected_routes(app_client):
        resp = call(app_client, method, path, {"Authorization": f"Bearer {expired}"})
        assert resp.json()["error"]["code"] == "AUTH_EXPIRED", (method, path)


def test_every_route_refuses_a_deactivated_and_an_expired_app(
    app_client: TestClient, acme: Tenant
) -> None:
    rt = app_client.app.state.rt  # type: ignore[attr-defined]
    off, off_key = accounts.create_app(rt, acme.company["id"], "off", 100)
    accounts.update_app(rt, acme.company["id"], off["app_id"], {"status": "deactivated"})
    _, old_key = accounts.create_app(rt, acme.company["id"], "old", 100, expires_at=time.time() - 1)
    for method, path in protected_routes(app_client):
        assert (
            call(app_client, method, path, {"X-API-Key": off_key}).json()["error"]["code"]
            == "APP_DEACTIVATED"
        ), (method, path)
        assert (
            call(app_client, method, path, {"X-API-Key": old_key}).json()["error"]["code"]
            == "APP_EXPIRED"
        ), (method, path)


def test_writes_are_forbidden_to_operators_and_admin_routes_to_non_admins(
    app_client: TestClient, acme: Tenant
) -> None:
    writes = [
        (m, p)
        for m, p in protected_routes(app_client)
        if m in ("POST", "PATCH", "DELETE")
        and "/search" not in p
        and p not in ("/v1/detect", "/v1/compare", "/v1/blacklist/check")
        # Operators run analyses as tasks too (tests/api/test_roles.py: the roles table).
        and not p.startswith("/v1/tasks")
        and not p.startswith("/v1/apps")
    ]
    assert len(writes) >= 10
    for method, path in writes:
        resp = call(app_client, method, path, acme.as_("operator"))
        assert resp.status_code == 403, (method, path, resp.text)
        assert resp.json()["error"]["code"] == "AUTH_FORBIDDEN"
    admin_only = [
        (m, p)
        for m, p in protected_routes(app_client)
        if p.startswith("/v1/admin") or (m == "PATCH" and p.startswith("/v1/apps"))
    ]
    for method, path in admin_only:
        for who in ("operator", "client"):
            resp = call(app_client, method, path, acme.as_(who))
            assert resp.json()["error"]["code"] == "AUTH_FORBIDDEN", (method, path, who)
        assert (
            call(app_client, method, path, acme.keyed).json()["error"]["code"] == "AUTH_FORBIDDEN"
        )


def png(color: tuple[int, int, int] = (120, 120, 120)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), color).save(buf, format="PNG")
    return buf.getvalue()


def test_a_company_never_sees_another_companys_data(
    app_client: TestClient, acme: Tenant, globex: Tenant, astronaut: bytes
) -> None:
    c = app_client
    cid = c.post("/v1/collections", json={"name": "vip"}, headers=acme.keyed).json()["id"]
    sid = c.post(
        f"/v1/collections/{cid}/subjects", json={"name": "eileen"}, headers=acme.keyed
    ).json()["id"]
    token = c.post(
        f"/v1/collections/{cid}/subjects/{sid}/faces",
        files={"image": ("a.jpg", astronaut)},
        headers=acme.keyed,
    ).json()["face_token"]
    task = c.post(
        "/v1/tasks",
        json={
            "operation": "crop",
            "input": {"image": {"base64": __import__("base64").b64encode(astronaut).decode()}},
        },
        headers=acme.keyed,
    ).json()["request_id"]
    done = c.get(f"/v1/tasks/{task}", params={"wait_s": 30}, headers=acme.keyed).json()
    assert done["status"] == "succeeded"
    other = globex.keyed
    checks = [
        ("GET", f"/v1/collections/{cid}", "COLLECTION_NOT_FOUND"),
        ("PATCH", f"/v1/collections/{cid}", "COLLECTION_NOT_FOUND"),
        ("DELETE", f"/v1/collections/{cid}", "COLLECTION_NOT_FOUND"),
        ("GET", f"/v1/collections/{cid}/subjects", "COLLECTION_NOT_FOUND"),
        ("GET", f"/v1/collections/{cid}/subjects/{sid}", "COLLECTION_NOT_FOUND"),
        ("DELETE", f"/v1/collections/{cid}/subjects/{sid}", "COLLECTION_NOT_FOUND"),
        ("GET", f"/v1/collections/{cid}/faces/{token}", "COLLECTION_NOT_FOUND"),
        ("DELETE", f"/v1/collections/{cid}/faces/{token}", "COLLECTION_NOT_FOUND"),
        ("POST", f"/v1/collections/{cid}/search", "COLLECTION_NOT_FOUND"),
        ("GET", f"/v1/tasks/{task}", "TASK_NOT_FOUND"),
        ("DELETE", f"/v1/tasks/{task}", "TASK_NOT_FOUND"),
        ("PATCH", f"/v1/apps/{acme.app['app_id']}", "RESOURCE_NOT_FOUND"),
        ("POST", f"/v1/apps/{acme.app['app_id']}/rotate", "RESOURCE_NOT_FOUND"),
    ]
    for method, path, code in checks:
        headers = globex.as_("admin") if path.startswith("/v1/apps") else other
        body: dict[str, Any] = {"face_token": token} if path.endswith("/search") else {}
        resp = c.request(method, path, headers=headers, json=body)
        assert resp.status_code == 404, (method, path, resp.text)
        assert resp.json()["error"]["code"] == code, (method, path)
    assert c.get("/v1/collections", headers=other).json()["collections"] == []
    assert c.get("/v1/tasks", headers=other).json()["tasks"] == []
    hit = c.post("/v1/blacklist/check", files={"image": ("a.jpg", astronaut)}, headers=other)
    assert hit.json()["hit"] is False
    # A signed blob URL is bound to its tenant: another company in it breaks the signature.
    path = "/" + done["result_url"].split("/", 3)[3]
    assert c.get(path).status_code == 200
    stolen = re.sub(r"company_id=\w+", f"company_id={globex.company['id']}", path)
    assert c.get(stolen).json()["error"]["code"] == "SIGNATURE_INVALID"
    # Globex's admin sees none of acme's audit entries either.
    entries = c.get("/v1/admin/audit", headers=globex.as_("admin")).json()["entries"]
    assert all(e["company_id"] == globex.company["id"] for e in entries)


def test_rate_limit_headers_count_down_exactly_then_429(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", rate_window_s=30)
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        rt = c.app.state.rt  # type: ignore[attr-defined]
        company = accounts.find_company(rt, "default")
        assert company
        _, key = accounts.create_app(rt, company["id"], "limited", 3)
        seen = []
        for _ in range(4):
            resp = c.get("/v1/me", headers={"X-API-Key": key})
            seen.append(
                (
                    resp.status_code,
                    resp.headers["x-ratelimit-limit"],
                    resp.headers["x-ratelimit-remaining"],
                )
            )
            reset = int(resp.headers["x-ratelimit-reset"])
            assert 1 <= reset <= 30
        assert seen == [(200, "3", "2"), (200, "3", "1"), (200, "3", "0"), (429, "3", "0")]
        assert resp.json()["error"]["code"] == "RATE_LIMIT_EXCEEDED"
        assert 1 <= int(resp.headers["retry-after"]) <= 30


def _signed(
    key: str,
    app_id: str,
    method: str,
    path: str,
    body: bytes = b"",
    nonce: str | None = None,
    ts: str | None = None,
) -> dict[str, str]:
    ts = ts or str(int(time.time()))
    nonce = nonce or uuid.uuid4().hex
    sig = accounts.sign(key, accounts.signed_message(method, path, ts, nonce, body))
    return {
        "X-Faceplane-App-Id": app_id,
        "X-Faceplane-Timestamp": ts,
        "X-Faceplane-Nonce": nonce,
        "X-Faceplane-Signature": sig,
    }


def test_signed_requests_and_replays(app_client: TestClient, acme: Tenant) -> None:
    app_id, key = acme.app["app_id"], acme.key
    headers = _signed(key, app_id, "GET", "/v1/me")
    first = app_client.get("/v1/me", headers=headers)
    assert first.status_code == 200 and first.json()["via"] == "signature"
    replay = app_client.get("/v1/me", headers=headers)
    assert replay.json()["error"]["code"] == "SIGNATURE_INVALID"
    assert "replay" in replay.json()["error"]["message"]
    bad = _signed("fpk_wrong", app_id, "GET", "/v1/me")
    assert app_client.get("/v1/me", headers=bad).json()["error"]["code"] == "SIGNATURE_INVALID"
    stale = _signed(key, app_id, "GET", "/v1/me", ts=str(int(time.time()) - 3600))
    assert app_client.get("/v1/me", headers=stale).json()["error"]["code"] == "SIGNATURE_INVALID"
    unknown = _signed(key, "app_nobody", "GET", "/v1/me")
    assert app_client.get("/v1/me", headers=unknown).json()["error"]["code"] == "APP_NOT_FOUND"
    partial = {
        k: v for k, v in _signed(key, app_id, "GET", "/v1/me").items() if k != "X-Faceplane-Nonce"
    }
    assert app_client.get("/v1/me", headers=partial).json()["error"]["code"] == "PARAMETERS_EMPTY"
    body = json.dumps({"name": "signed-collection"}).encode()
    post = _signed(key, app_id, "POST", "/v1/collections", body)
    resp = app_client.post(
        "/v1/collections", content=body, headers={**post, "content-type": "application/json"}
    )
    assert resp.status_code == 201, resp.text
    tampered = app_client.post(
        "/v1/collections",
        content=body.replace(b"signed", b"forged"),
        headers={
            **_signed(key, app_id, "POST", "/v1/collections", body),
            "content-type": "application/json",
        },
    )
    assert tampered.json()["error"]["code"] == "SIGNATURE_INVALID"


def test_a_deactivated_app_is_refused_at_once(app_client: TestClient, acme: Tenant) -> None:
    rt = app_client.app.state.rt  # type: ignore[attr-defined]
    app, key = accounts.create_app(rt, acme.company["id"], "soon-off", 100)
    assert app_client.get("/v1/me", headers={"X-API-Key": key}).status_code == 200
    resp = app_client.patch(
        f"/v1/apps/{app['app_id']}", json={"status": "deactivated"}, headers=acme.as_("admin")
    )
    assert resp.json()["status"] == "deactivated"
    assert (
        app_client.get("/v1/me", headers={"X-API-Key": key}).json()["error"]["code"]
        == "APP_DEACTIVATED"
    )


def test_rotated_key_replaces_the_old_one(app_client: TestClient, acme: Tenant) -> None:
    created = app_client.post("/v1/apps", json={"name": "mine"}, headers=acme.as_("client"))
    assert created.status_code == 201
    app_id, old = created.json()["app_id"], created.json()["key"]
    new = app_client.post(f"/v1/apps/{app_id}/rotate", headers=acme.as_("client")).json()["key"]
    assert app_client.get("/v1/me", headers={"X-API-Key": new}).status_code == 200
    assert (
        app_client.get("/v1/me", headers={"X-API-Key": old}).json()["error"]["code"]
        == "AUTH_INVALID"
    )


def test_quota_is_spent_atomically_and_refunded_on_refusal(
    app_client: TestClient, acme: Tenant, astronaut: bytes
) -> None:
    rt = app_client.app.state.rt  # type: ignore[attr-defined]
    _, key = accounts.create_app(rt, acme.company["id"], "metered", 1000, quota=3)
    h = {"X-API-Key": key}
    bad = app_client.post("/v1/detect", files={"image": ("x.jpg", b"not an image")}, headers=h)
    assert bad.json()["error"]["code"] == "IMAGE_CORRUPT"  # refused work is not billed
    for _ in range(3):
        assert (
            app_client.post("/v1/detect", files={"image": ("a", astronaut)}, headers=h).status_code
            == 200
        )
    over = app_client.post("/v1/detect", files={"image": ("a", astronaut)}, headers=h)
    assert over.status_code == 429 and over.json()["error"]["code"] == "QUOTA_EXCEEDED"


def test_login_refresh_and_hashed_passwords(app_client: TestClient, acme: Tenant) -> None:
    pair = app_client.post(
        "/v1/auth/login", json={"email": "client@acme.test", "password": "correct horse battery"}
    ).json()
    assert (
        app_client.get(
            "/v1/me", headers={"Authorization": f"Bearer {pair['access_token']}"}
        ).json()["role"]
        == "client"
    )
    again = app_client.post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert again.status_code == 200 and again.json()["access_token"] != pair["access_token"]
    spent = app_client.post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert spent.json()["error"]["code"] == "AUTH_INVALID"
    wrong = app_client.post(
        "/v1/auth/login", json={"email": "client@acme.test", "password": "wrong password"}
    )
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "AUTH_INVALID"
    rt = app_client.app.state.rt  # type: ignore[attr-defined]
    store = rt.store
    with store.db.connect() as conn:
        hashes = conn.execute(select(users.c.password_hash)).scalars().all()
    assert hashes and all(h.startswith("$argon2id$") for h in hashes)


def test_audit_log_records_who_did_what_without_image_data(
    app_client: TestClient, acme: Tenant, astronaut: bytes
) -> None:
    app_client.post("/v1/collections", json={"name": "audited"}, headers=acme.keyed)
    app_client.post("/v1/detect", files={"image": ("a", astronaut)}, headers=acme.keyed)
    entries = app_client.get("/v1/admin/audit", headers=acme.as_("admin")).json()["entries"]
    actions = {(e["actor"], e["action"], e["status"]) for e in entries}
    actor = f"app:{acme.app['app_id']}"
    assert (actor, "POST /v1/collections", 201) in actions
    assert (actor, "POST /v1/detect", 200) in actions
    assert all(
        set(e) == {"id", "at", "company_id", "actor", "action", "resource", "status", "ip"}
        for e in entries
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_rate_limit_holds_across_two_server_processes(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "FACEPLANE_DATA_DIR": str(tmp_path / "data"),
        "FACEPLANE_WORKERS": "0",
        "FACEPLANE_RATE_WINDOW_S": "3600",
    }
    # Windows are fixed (aligned to the epoch): 20 requests that straddle a boundary would count
    # in two windows (CI once saw 15 passes of 10), so start well inside one.
    left = 3600 - time.time() % 3600
    if left < 120:
        time.sleep(left + 1)
    key = cli_app_key(env, "two", 10)
    ports = [_free_port(), _free_port()]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "faceplane.cli", "serve", "--port", str(p)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for p in ports
    ]
    try:
        for p in ports:
            for _ in range(150):
                try:
                    httpx.get(f"http://127.0.0.1:{p}/v1/health", timeout=1)
                    break
                except httpx.TransportError:
                    time.sleep(0.2)
        codes = [
            httpx.get(
                f"http://127.0.0.1:{ports[i % 2]}/v1/me", headers={"X-API-Key": key}, timeout=10
            ).status_code
            for i in range(20)
        ]
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=20)
    assert codes.count(200) == 10 and codes.count(429) == 10
