"""One cursor codec and one time format across the native API: malformed cursors and `since`
values are INVALID_ARGUMENT naming the field; every time in an answer is ISO 8601 UTC."""

from __future__ import annotations

import base64
import datetime as dt
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from faceplane.app import create_app
from faceplane.services import accounts
from faceplane.settings import Settings

ISO_UTC = "%Y-%m-%dT%H:%M:%S.%f+00:00"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("paging") / "data", workers=0)
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        rt = c.app.state.rt  # type: ignore[attr-defined]
        company = accounts.find_company(rt, "default")
        assert company is not None
        email = f"admin-{secrets.token_hex(4)}@paging.test"
        accounts.create_user(rt, company["id"], email, "correct horse battery", "admin")
        token = accounts.login(rt, email, "correct horse battery", 600, 600)
        c.headers["Authorization"] = f"Bearer {token['access_token']}"
        yield c


@pytest.fixture(scope="module")
def tree(client: TestClient) -> dict[str, str]:
    """A collection with two subjects."""
    cid = client.post("/v1/collections", json={"name": "paging", "kind": "gallery"}).json()["id"]
    sids = [
        client.post(f"/v1/collections/{cid}/subjects", json={"name": n}).json()["id"]
        for n in ("ann", "bob")
    ]
    return {"collection": cid, "subject": sids[0]}


def is_iso_utc(value: Any) -> bool:
    try:
        dt.datetime.strptime(value, ISO_UTC)
    except (TypeError, ValueError):
        return False
    return True


def submit(client: TestClient, astronaut: bytes) -> dict[str, Any]:
    image = {"base64": base64.b64encode(astronaut).decode()}
    resp = client.post("/v1/tasks", json={"operation": "detect", "input": {"image": image}})
    assert resp.status_code == 202, resp.text
    return resp.json()


def list_paths(tree: dict[str, str]) -> list[str]:
    cid, sid = tree["collection"], tree["subject"]
    return [
        "/v1/tasks",
        "/v1/admin/audit",
        "/v1/collections",
        f"/v1/collections/{cid}/subjects",
        f"/v1/collections/{cid}/subjects/{sid}/faces",
    ]


MALFORMED = [
    "abc",  # the reported 500 on /v1/tasks
    "99999999999999999999999",  # an old audit cursor past SQLite's integer: 500
    base64.urlsafe_b64encode(b"[1, 2, 3]").decode(),  # well-formed, wrong shape
    base64.urlsafe_b64encode(b'{"id": 1}').decode(),
    "%%%",
]


@pytest.mark.parametrize("cursor", MALFORMED)
def test_a_malformed_cursor_is_invalid_argument_naming_the_field_on_every_list(
    client: TestClient, tree: dict[str, str], cursor: str
) -> None:
    for path in list_paths(tree):
        resp = client.get(path, params={"cursor": cursor})
        assert resp.status_code == 400, (path, resp.text)
        err = resp.json()["error"]
        assert err["code"] == "INVALID_ARGUMENT" and err["details"]["field"] == "cursor", path


def test_next_cursor_pages_every_list(client: TestClient, tree: dict[str, str]) -> None:
    client.post("/v1/collections", json={"name": "paging-2", "kind": "gallery"})
    for path, items in [
        ("/v1/collections", "collections"),
        (f"/v1/collections/{tree['collection']}/subjects", "subjects"),
        ("/v1/admin/audit", "entries"),
    ]:
        first = client.get(path, params={"limit": 1}).json()
        assert first["next_cursor"], path
        second = client.get(path, params={"limit": 1, "cursor": first["next_cursor"]}).json()
        assert second[items] and second[items][0] != first[items][0], path


def test_since_accepts_iso_8601_with_an_offset_naive_as_utc_and_refuses_garbage(
    client: TestClient, astronaut: bytes
) -> None:
    task = submit(client, astronaut)
    created = dt.datetime.fromisoformat(task["created_at"])

    def listed(since: str) -> bool:
        resp = client.get("/v1/tasks", params={"since": since, "limit": 100})
        assert resp.status_code == 200, resp.text
        return task["request_id"] in {t["request_id"] for t in resp.json()["tasks"]}

    before, after = created - dt.timedelta(seconds=1), created + dt.timedelta(seconds=1)
    plus5 = dt.timezone(dt.timedelta(hours=5))
    assert listed(before.isoformat())
    assert listed(before.astimezone(plus5).isoformat())  # the same instant, 5 h ahead
    assert not listed(after.astimezone(plus5).isoformat())
    assert listed(before.replace(tzinfo=None).isoformat())  # naive = UTC
    assert not listed(after.replace(tzinfo=None).isoformat())
    assert listed(before.strftime("%Y-%m-%dT%H:%M:%SZ"))
    for path in ("/v1/tasks", "/v1/admin/audit"):
        for garbage in ("yesterday", "2024-13-01T00:00:00", "nan"):
            resp = client.get(path, params={"since": garbage})
            err = resp.json()["error"]
            assert resp.status_code == 400 and err["code"] == "INVALID_ARGUMENT", (path, garbage)
            assert err["details"]["field"] == "since"


def test_every_time_in_a_native_answer_is_iso_8601_utc(
    client: TestClient, tree: dict[str, str], astronaut: bytes
) -> None:
    cid, sid = tree["collection"], tree["subject"]
    task = submit(client, astronaut)
    assert all(is_iso_utc(task[k]) for k in ("created_at", "expires_at"))
    collection = client.get(f"/v1/collections/{cid}").json()
    subject = client.get(f"/v1/collections/{cid}/subjects/{sid}").json()
    listed = client.get("/v1/collections").json()["collections"][0]
    for obj in (collection, subject, listed):
        assert is_iso_utc(obj["created_at"]) and is_iso_utc(obj["updated_at"]), obj
    made = client.post("/v1/apps", json={"name": "t", "expires_at": "2030-01-01T05:00:00+05:00"})
    assert made.status_code == 201, made.text
    app = made.json()
    assert is_iso_utc(app["created_at"]) and app["expires_at"] == "2030-01-01T00:00:00.000+00:00"
    patched = client.patch(f"/v1/apps/{app['app_id']}", json={"expires_at": "2031-06-01"}).json()
    assert patched["expires_at"] == "2031-06-01T00:00:00.000+00:00"
    rotated = client.post(f"/v1/apps/{app['app_id']}/rotate").json()
    assert is_iso_utc(rotated["rotated_at"])
    assert all(is_iso_utc(a["created_at"]) for a in client.get("/v1/apps").json()["apps"])
    users = client.get("/v1/admin/users").json()["users"]
    assert users and all(is_iso_utc(u["created_at"]) for u in users)
    entries = client.get("/v1/admin/audit").json()["entries"]
    assert entries and all(is_iso_utc(e["at"]) for e in entries)


def test_a_bad_app_expiry_is_invalid_argument(client: TestClient) -> None:
    resp = client.post("/v1/apps", json={"name": "t", "expires_at": "next tuesday"})
    err = resp.json()["error"]
    assert resp.status_code == 400 and err["details"]["field"] == "expires_at"
