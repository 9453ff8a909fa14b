"""The roles table of README.md is what the server does: every cell, tried over HTTP."""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from faceplane.api import auth
from faceplane.app import create_app
from faceplane.services import accounts
from faceplane.services.operations import OPERATIONS
from faceplane.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"
KINDS = ("admin", "operator", "client", "app")
HEADER = "| capability | admin | operator | client | app key |"


def roles_table() -> dict[str, dict[str, bool]]:
    """README's table: capability → {admin, operator, client, app: allowed}."""
    lines = README.read_text().splitlines()
    start = lines.index(HEADER) + 2
    table: dict[str, dict[str, bool]] = {}
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        name = re.match(r"`(\w+)`", cells[0])
        assert name, line
        assert all(c in ("yes", "no") for c in cells[1:]), line
        table[name.group(1)] = {k: c == "yes" for k, c in zip(KINDS, cells[1:], strict=True)}
    return table


TABLE = roles_table()
CELLS = [(cap, kind) for cap in TABLE for kind in KINDS]


class Company:
    """A company with a user of each role and an app key; their credentials as headers."""

    def __init__(self, client: TestClient) -> None:
        rt = client.app.state.rt  # type: ignore[attr-defined]
        self.id = accounts.create_company(rt, f"roles-{secrets.token_hex(4)}")["id"]
        self.headers: dict[str, dict[str, str]] = {}
        for role in ("admin", "operator", "client"):
            email = f"{role}-{secrets.token_hex(4)}@roles.test"
            accounts.create_user(rt, self.id, email, "correct horse battery", role)
            token = accounts.login(rt, email, "correct horse battery", 600, 600)
            self.headers[role] = {"Authorization": f"Bearer {token['access_token']}"}
        _, key = accounts.create_app(rt, self.id, "roles", 100_000)
        self.headers["app"] = {"X-API-Key": key}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("roles") / "data", workers=0)
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def company(client: TestClient) -> Company:
    return Company(client)


def _b64(data: bytes) -> dict[str, str]:
    return {"base64": base64.b64encode(data).decode()}


Attempt = Callable[[TestClient, Company, dict[str, str], bytes], list[Any]]


def _read(c: TestClient, co: Company, h: dict[str, str], img: bytes) -> list[Any]:
    return [c.get("/v1/tasks", headers=h), c.get("/v1/collections", headers=h)]


def _analyse(c: TestClient, co: Company, h: dict[str, str], img: bytes) -> list[Any]:
    task = {"operation": "detect", "input": {"image": _b64(img)}}
    submitted = c.post("/v1/tasks", json=task, headers=h)
    out = [
        c.post("/v1/detect", files={"image": ("a.jpg", img)}, headers=h),
        submitted,
        c.post("/v1/tasks:batch", json=[task, {**task, "operation": "crop"}], headers=h),
    ]
    if submitted.status_code == 202:
        out.append(c.delete(f"/v1/tasks/{submitted.json()['request_id']}", headers=h))
    return out


def _change_data(c: TestClient, co: Company, h: dict[str, str], img: bytes) -> list[Any]:
    name = f"g-{secrets.token_hex(4)}"
    made = c.post("/v1/collections", json={"name": name, "kind": "gallery"}, headers=h)
    enroll = {
        "operation": "enroll",
        "input": {"image": _b64(img)},
        "options": {"collection_id": "c" * 32, "subject_id": "s" * 32},
    }
    return [made, c.post("/v1/tasks", json=enroll, headers=h)]


def _own_apps(c: TestClient, co: Company, h: dict[str, str], img: bytes) -> list[Any]:
    made = c.post("/v1/apps", json={"name": "mine"}, headers=h)
    app_id = made.json().get("app_id", "app_0000000000000000")
    return [made, c.post(f"/v1/apps/{app_id}/rotate", headers=h)]


def _administer(c: TestClient, co: Company, h: dict[str, str], img: bytes) -> list[Any]:
    rt = c.app.state.rt  # type: ignore[attr-defined]
    app, _ = accounts.create_app(rt, co.id, "limited", 100)
    return [
        c.get("/v1/admin/users", headers=h),
        c.get("/v1/admin/audit", headers=h),
        c.patch(f"/v1/apps/{app['app_id']}", json={"quota": 10}, headers=h),
    ]


ATTEMPTS: dict[str, Attempt] = {
    "read": _read,
    "analyse": _analyse,
    "change_data": _change_data,
    "own_apps": _own_apps,
    "administer": _administer,
}


def test_the_table_names_every_capability_and_matches_the_code() -> None:
    assert set(TABLE) == {c.value for c in auth.Capability} == set(ATTEMPTS)
    for cap, row in TABLE.items():
        for kind, allowed in row.items():
            assert (auth.Capability(cap) in auth.CAPABILITIES[kind]) is allowed, (cap, kind)


def test_every_read_only_operation_is_an_analysis_and_enroll_changes_data() -> None:
    assert {"detect", "compare", "crop", "search", "blacklist_check"} == auth.ANALYSES
    assert set(OPERATIONS) >= auth.ANALYSES
    assert auth.operation_capability("enroll") == auth.Capability.CHANGE_DATA
    # An operation added later is a data change until someone lists it as an analysis.
    assert auth.operation_capability("portrait_effect") == auth.Capability.CHANGE_DATA


@pytest.mark.parametrize(("capability", "kind"), CELLS, ids=[f"{k}-{c}" for c, k in CELLS])
def test_each_cell_of_the_roles_table_holds(
    capability: str, kind: str, client: TestClient, company: Company, astronaut: bytes
) -> None:
    answers = ATTEMPTS[capability](client, company, company.headers[kind], astronaut)
    for resp in answers:
        where = (capability, kind, resp.request.method, resp.request.url.path, resp.text[:300])
        if TABLE[capability][kind]:
            assert 200 <= resp.status_code < 300, where
        else:
            assert resp.status_code == 403, where
            assert resp.json()["error"]["code"] == "AUTH_FORBIDDEN", where
