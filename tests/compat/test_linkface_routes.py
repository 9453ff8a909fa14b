"""Linkface compatible routes: the seed's status names, HTTP codes and rate-limit headers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from faceplane.services import accounts
from faceplane.settings import Settings
from support import authed_client

DEEPFACE = "faces/deepface/images"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("linkface") / "data", workers=0)
    with authed_client(settings) as c:
        yield c


@pytest.fixture(scope="module")
def creds(client: TestClient) -> dict[str, str]:
    store = client.app.state.rt.store  # type: ignore[attr-defined]
    company = accounts.find_company(store, "default")
    assert company
    app, key = accounts.create_app(store, company["id"], "linkface", 10_000)
    return {"api_id": app["app_id"], "api_secret": key}


def test_detection_answers_ok_with_rate_limit_headers(
    client: TestClient, creds: dict[str, str], astronaut: bytes
) -> None:
    resp = client.post(
        "/compat/linkface/face/detection",
        data=creds,
        files={"file": ("a.jpg", astronaut)},
        headers={"X-API-Key": ""},
    )
    assert resp.status_code == 200
    body = resp.json()
    assert body["status"] == "OK" and body["request_id"] and len(body["faces"]) == 1
    rect = body["faces"][0]["rect"]
    assert rect["right"] > rect["left"] and rect["bottom"] > rect["top"]
    for name in ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"):
        assert resp.headers[name].isdigit()


def test_missing_argument_is_the_seed_example(client: TestClient, creds: dict[str, str]) -> None:
    resp = client.post("/compat/linkface/face/detection", data=creds, headers={"X-API-Key": ""})
    assert resp.status_code == 400
    body = resp.json()
    assert body == {
        "status": "INVALID_ARGUMENT",
        "reason": "must specify 'file' or 'url' argument",
        "request_id": body["request_id"],
    }


def test_non_utf8_parameter_is_encoding_error(client: TestClient, creds: dict[str, str]) -> None:
    raw = (f"api_id={creds['api_id']}&api_secret={creds['api_secret']}&url=%FF%FE").encode()
    resp = client.post(
        "/compat/linkface/face/detection",
        content=raw,
        headers={"content-type": "application/x-www-form-urlencoded", "X-API-Key": ""},
    )
    assert resp.status_code == 400 and resp.json()["status"] == "ENCODING_ERROR"


def test_image_errors_name_the_image(client: TestClient, creds: dict[str, str]) -> None:
    resp = client.post(
        "/compat/linkface/face/detection",
        data=creds,
        files={"file": ("x.jpg", b"not an image")},
        headers={"X-API-Key": ""},
    )
    body = resp.json()
    assert resp.status_code == 400 and body["status"] == "CORRUPT_IMAGE"


def test_auth_failures(client: TestClient, creds: dict[str, str], astronaut: bytes) -> None:
    bad = client.post(
        "/compat/linkface/face/detection",
        data={**creds, "api_secret": "fpk_wrong"},
        files={"file": ("a.jpg", astronaut)},
        headers={"X-API-Key": ""},
    )
    assert bad.status_code == 401 and bad.json()["status"] == "UNAUTHORIZED"
    none = client.post(
        "/compat/linkface/face/detection",
        files={"file": ("a.jpg", astronaut)},
        headers={"X-API-Key": ""},
    )
    assert none.status_code == 401 and none.json()["status"] == "UNAUTHORIZED"


def test_rate_limit_is_403_with_zero_remaining(client: TestClient, astronaut: bytes) -> None:
    store = client.app.state.rt.store  # type: ignore[attr-defined]
    company = accounts.find_company(store, "default")
    assert company
    app, key = accounts.create_app(store, company["id"], "tight", 1)
    form = {"api_id": app["app_id"], "api_secret": key}
    first = client.post(
        "/compat/linkface/face/detection",
        data=form,
        files={"file": ("a", astronaut)},
        headers={"X-API-Key": ""},
    )
    assert first.status_code == 200 and first.headers["x-ratelimit-remaining"] == "0"
    second = client.post(
        "/compat/linkface/face/detection",
        data=form,
        files={"file": ("a", astronaut)},
        headers={"X-API-Key": ""},
    )
    assert second.status_code == 403
    assert second.json()["status"] == "RATE_LIMIT_EXCEEDED"
    assert second.headers["x-ratelimit-limit"] == "1"
    assert second.headers["x-ratelimit-remaining"] == "0"


def test_verification_on_real_photos(
    client: TestClient, creds: dict[str, str], testdata: Path
) -> None:
    root = testdata / DEEPFACE
    files = {
        "file1": ("1.jpg", (root / "img1.jpg").read_bytes()),
        "file2": ("2.jpg", (root / "img2.jpg").read_bytes()),
    }
    body = client.post(
        "/compat/linkface/identity/verification", data=creds, files=files, headers={"X-API-Key": ""}
    ).json()
    assert body["status"] == "OK" and body["is_same_person"] is True
    no_face = client.post(
        "/compat/linkface/identity/verification",
        data=creds,
        headers={"X-API-Key": ""},
        files={
            "file1": ("1.jpg", (root / "img1.jpg").read_bytes()),
            "file2": ("d.jpg", (testdata / "faces/dlib/examples/faces/dogs.jpg").read_bytes()),
        },
    )
    assert no_face.status_code == 400 and no_face.json()["status"] == "NO_FACE_DETECTED"


def test_unknown_route_is_not_found_in_linkface_shape(client: TestClient) -> None:
    resp = client.get("/compat/linkface/nothing")
    assert resp.status_code == 404 and resp.json()["status"] == "NOT_FOUND"
