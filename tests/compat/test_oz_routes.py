"""Oz Forensics compatible routes (seeds 002, 004): token auth and its codes 6-9, the routes
that are not realized, and Oz's words in errors."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from faceplane.compat.oz import render as oz_render
from faceplane.errors import Err, FaceplaneError
from faceplane.services import accounts
from faceplane.store.db import tokens
from oz_client import (
    OZ,
    PASSWORD,
    as_token,
    login,
    new_user,
    oz_app,
    oz_error,
    oz_user,
    photo,
    store_of,
)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with oz_app(tmp_path_factory) as c:
        yield c


@pytest.fixture(scope="module")
def oz(client: TestClient) -> dict[str, str]:
    return oz_user(client, "oz.client@example.com")


def test_login_refresh_and_their_errors(client: TestClient) -> None:
    email = new_user(client, "oz.login@example.com", role="admin")
    session = login(client, email)
    assert set(session) == {"access_token", "expire_token", "expire_date", "user"}
    assert session["expire_date"] > time.time()
    user = session["user"]
    assert user["email"] == email and user["user_type"] == "ADMIN" and user["is_admin"] is True
    assert user["user_id"] and user["company_id"] and user["is_service"] is False
    also = client.post(
        f"{OZ}/authorize/auth/", json={"credentials": {"email": email, "password": PASSWORD}}
    )
    assert also.status_code == 200
    wrong = {"credentials": {"email": email, "password": "not the password"}}
    oz_error(client.post(f"{OZ}/authorize/auth", json=wrong), 401, 7)
    oz_error(client.post(f"{OZ}/authorize/auth", json={}), 400, 3)
    oz_error(client.post(f"{OZ}/authorize/auth", content=b"{not json"), 400, 3)
    oz_error(client.post(f"{OZ}/authorize/auth", json={"credentials": "x"}), 400, 5)
    bad_type = {"credentials": {"email": 1, "password": PASSWORD}}
    body = oz_error(client.post(f"{OZ}/authorize/auth", json=bad_type), 400, 5)
    assert body["details"] == {"field": "credentials.email"}
    renewed = client.post(
        f"{OZ}/authorize/refresh/", json={"expire_token": session["expire_token"]}
    )
    assert renewed.status_code == 200 and renewed.json()["access_token"] != session["access_token"]
    assert renewed.json()["user"]["user_id"] == user["user_id"]
    fresh = as_token(renewed.json()["access_token"])
    assert client.get(f"{OZ}/authorize/session_token/", headers=fresh).status_code == 200
    # A spent expire_token presented again is a theft: the renewed pair is revoked too.
    spent = {"expire_token": session["expire_token"]}
    oz_error(client.post(f"{OZ}/authorize/refresh/", json=spent), 401, 7)
    oz_error(client.get(f"{OZ}/authorize/session_token/", headers=fresh), 401, 7)
    again = {"expire_token": renewed.json()["expire_token"]}
    oz_error(client.post(f"{OZ}/authorize/refresh/", json=again), 401, 7)


def test_token_auth_answers_codes_6_to_9(client: TestClient, testdata: Path) -> None:
    path = f"{OZ}/folders/{uuid.uuid4()}/"
    body = oz_error(client.get(path, headers={"X-API-Key": ""}), 401, 6)
    assert body["details"] is None
    oz_error(client.get(path, headers=as_token("fpt_not-a-token")), 401, 7)
    token = login(client, new_user(client, "oz.expired@example.com"))["access_token"]
    with store_of(client).db.begin() as conn:
        conn.execute(
            update(tokens).where(tokens.c.hash == accounts.sha256_hex(token)).values(expires_at=0)
        )
    oz_error(client.get(path, headers=as_token(token)), 401, 8)
    operator = as_token(
        login(client, new_user(client, "oz.op@example.com", "operator"))["access_token"]
    )
    files = {"photo1": ("a.jpg", photo(testdata, "img1.jpg"), "image/jpeg")}
    oz_error(client.post(f"{OZ}/folders/", headers=operator, files=files), 403, 9)
    oz_error(client.delete(path, headers=operator), 403, 9)


def test_unsupported_routes_are_not_realized(client: TestClient, oz: dict[str, str]) -> None:
    some = uuid.uuid4().hex
    for method, path in (
        ("GET", "/folders/"),
        ("POST", f"/folders/{some}/media/"),
        ("PATCH", f"/media/{some}/"),
        ("GET", "/analyses/"),
        ("POST", "/instant/folders/"),
    ):
        oz_error(client.request(method, OZ + path, headers=oz), 501, 2)
    oz_error(client.put(f"{OZ}/folders/{some}/", headers=oz), 405, 1)
    oz_error(client.get(f"{OZ}/no/such/route/", headers=oz), 404, 10)


def test_oz_errors_call_a_session_a_folder_and_keep_oz_own_terms() -> None:
    missing = FaceplaneError(
        Err.RESOURCE_NOT_FOUND, "There is no session with this id.", session_id="ab"
    )
    status, body = oz_render.render_error(missing)
    assert status == 404 and body["error_code"] == 10
    assert body["error_message"] == "There is no folder with this id."
    assert body["details"] == {"folder_id": "ab"}
    token = FaceplaneError(Err.CONTAINER_SIGNATURE_INVALID, "Invalid or empty Session Token.")
    assert oz_render.render_error(token)[1]["error_message"] == "Invalid or empty Session Token."
    field = FaceplaneError(Err.INVALID_ARGUMENT, "`session_token` is bad.", field="session_token")
    assert oz_render.render_error(field)[1]["error_message"] == "`session_token` is bad."
