"""Linkface compatible routes: the seed's status names, HTTP codes and rate-limit headers."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from fastapi.testclient import TestClient

from faceplane.services import accounts
from faceplane.settings import Settings
from support import authed_client

DEEPFACE = "faces/deepface/images"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("linkface") / "data", workers=0, fetch_allow_private=True
    )
    with authed_client(settings) as c:
        yield c


@pytest.fixture(scope="module")
def creds(client: TestClient) -> dict[str, str]:
    rt = client.app.state.rt  # type: ignore[attr-defined]
    company = accounts.find_company(rt, "default")
    assert company
    app, key = accounts.create_app(rt, company["id"], "linkface", 10_000)
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
    rt = client.app.state.rt  # type: ignore[attr-defined]
    company = accounts.find_company(rt, "default")
    assert company
    app, key = accounts.create_app(rt, company["id"], "tight", 1)
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
    assert body["confidence"] >= body["threshold"] == 0.7 and 0 < body["far"] < 1e-4
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


# ---- errors name the client's fields ------------------------------------------------------

DEAD_URL = "http://127.0.0.1:9/nothing.jpg"  # nothing listens on the discard port


@pytest.fixture(scope="module")
def collection_id(client: TestClient) -> str:
    resp = client.post("/v1/collections", json={"name": "linkface-fields"})
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


def _route_form(route: str, collection_id: str) -> tuple[str, dict[str, str]]:
    extra = {"collection_id": collection_id} if route == "/face/search" else {}
    return "/compat/linkface" + route, extra


# (route, the suffix of the image under test, the suffix of the other image if any)
IMAGE_FIELDS = [
    ("/face/detection", "", None),
    ("/face/search", "", None),
    ("/identity/verification", "1", "2"),
    ("/identity/verification", "2", "1"),
]


@pytest.mark.parametrize(("route", "suffix", "other"), IMAGE_FIELDS)
def test_a_missing_image_names_the_file_and_url_fields_of_its_route(
    client: TestClient,
    creds: dict[str, str],
    astronaut: bytes,
    collection_id: str,
    route: str,
    suffix: str,
    other: str | None,
) -> None:
    path, extra = _route_form(route, collection_id)
    files = {f"file{other}": ("o.jpg", astronaut)} if other else None
    resp = client.post(path, data={**creds, **extra}, files=files, headers={"X-API-Key": ""})
    assert resp.status_code == 400
    body = resp.json()
    assert body["status"] == "INVALID_ARGUMENT"
    assert body["reason"] == f"must specify 'file{suffix}' or 'url{suffix}' argument"


@pytest.mark.parametrize(("route", "suffix", "other"), IMAGE_FIELDS)
def test_a_corrupt_upload_is_corrupt_image_naming_its_file_field(
    client: TestClient,
    creds: dict[str, str],
    astronaut: bytes,
    collection_id: str,
    route: str,
    suffix: str,
    other: str | None,
) -> None:
    path, extra = _route_form(route, collection_id)
    files = {f"file{suffix}": ("x.jpg", b"\xff\xd8 not a jpeg at all")}
    if other:
        files[f"file{other}"] = ("o.jpg", astronaut)
    resp = client.post(path, data={**creds, **extra}, files=files, headers={"X-API-Key": ""})
    assert resp.status_code == 400
    body = resp.json()
    assert (body["status"], body["image"]) == ("CORRUPT_IMAGE", f"file{suffix}")
    assert "`image" not in body["reason"]  # no Faceplane field name


@pytest.mark.parametrize(("route", "suffix", "other"), IMAGE_FIELDS)
def test_an_unreachable_url_is_download_error_naming_its_url_field(
    client: TestClient,
    creds: dict[str, str],
    astronaut: bytes,
    collection_id: str,
    route: str,
    suffix: str,
    other: str | None,
) -> None:
    path, extra = _route_form(route, collection_id)
    files = {f"file{other}": ("o.jpg", astronaut)} if other else None
    resp = client.post(
        path,
        data={**creds, **extra, f"url{suffix}": DEAD_URL},
        files=files,
        headers={"X-API-Key": ""},
    )
    assert resp.status_code == 400
    body = resp.json()
    assert (body["status"], body["image"]) == ("DOWNLOAD_ERROR", f"url{suffix}")


@pytest.mark.parametrize(("field", "via_url"), [("file1", False), ("file2", False), ("url2", True)])
def test_no_face_in_one_side_of_a_verification_names_that_side(
    client: TestClient,
    creds: dict[str, str],
    testdata: Path,
    field: str,
    via_url: bool,
) -> None:
    face = (testdata / DEEPFACE / "img1.jpg").read_bytes()
    dogs = (testdata / "faces/dlib/examples/faces/dogs.jpg").read_bytes()
    other = "file2" if field == "file1" else "file1"
    files = {other: ("f.jpg", face)}
    data = dict(creds)
    if via_url:
        data[field] = _serve(dogs)
    else:
        files[field] = ("d.jpg", dogs)
    resp = client.post(
        "/compat/linkface/identity/verification", data=data, files=files, headers={"X-API-Key": ""}
    )
    assert resp.status_code == 400
    body = resp.json()
    assert (body["status"], body["image"]) == ("NO_FACE_DETECTED", field)
    assert f"`{field}`" in body["reason"] and "`image" not in body["reason"]


def test_a_bad_top_names_top(
    client: TestClient, creds: dict[str, str], astronaut: bytes, collection_id: str
) -> None:
    for top in ("many", "0", "101"):
        resp = client.post(
            "/compat/linkface/face/search",
            data={**creds, "collection_id": collection_id, "top": top},
            files={"file": ("a.jpg", astronaut)},
            headers={"X-API-Key": ""},
        )
        assert resp.status_code == 400
        body = resp.json()
        assert body["status"] == "INVALID_ARGUMENT" and "'top'" in body["reason"], body


def test_a_non_utf8_multipart_field_is_encoding_error(
    client: TestClient, creds: dict[str, str]
) -> None:
    boundary = "xyzzy"
    parts = [(name, value.encode()) for name, value in creds.items()]
    parts.append(("url", b"http://h/\xff\xfe.jpg"))
    body = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        + value
        + b"\r\n"
        for name, value in parts
    )
    resp = client.post(
        "/compat/linkface/face/detection",
        content=body + f"--{boundary}--\r\n".encode(),
        headers={"content-type": f"multipart/form-data; boundary={boundary}", "X-API-Key": ""},
    )
    assert resp.status_code == 400 and resp.json()["status"] == "ENCODING_ERROR"


class _Photos(BaseHTTPRequestHandler):
    files: ClassVar[dict[str, bytes]] = {}

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        body = self.files.get(self.path, b"")
        self.send_response(200 if body else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


_SERVER: list[ThreadingHTTPServer] = []


def _serve(data: bytes) -> str:
    """A local URL that serves `data` (one server for the module)."""
    if not _SERVER:
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Photos)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        _SERVER.append(httpd)
    path = f"/{len(_Photos.files)}.jpg"
    _Photos.files[path] = data
    return f"http://127.0.0.1:{_SERVER[0].server_address[1]}{path}"
