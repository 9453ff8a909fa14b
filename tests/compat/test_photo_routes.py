"""Pho.to compatible routes: addtask / getresult, exactly in the seed's XML, on a real photo."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from fastapi.testclient import TestClient

from faceplane.services import accounts
from faceplane.settings import Settings
from support import authed_client

TAGS = {
    "request_id",
    "status",
    "description",
    "err_code",
    "result_url",
    "thumb1_url",
    "thumb2_url",
    "thumb_ini1_url",
    "thumb_ini2_url",
}


class Photos(BaseHTTPRequestHandler):
    files: ClassVar[dict[str, bytes]] = {}

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        body = self.files.get(self.path)
        self.send_response(200 if body else 404)
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")


@pytest.fixture(scope="module")
def photo_server(astronaut: bytes, testdata: Path) -> Iterator[str]:
    Photos.files = {
        "/astronaut.jpg": astronaut,
        "/dogs.jpg": (testdata / "faces/dlib/examples/faces/dogs.jpg").read_bytes(),
    }
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Photos)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def image_url(photo_server: str) -> str:
    return photo_server + "/astronaut.jpg"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("photo") / "data", workers=1, fetch_allow_private=True
    )
    with authed_client(settings) as c:
        yield c


@pytest.fixture(scope="module")
def app(client: TestClient) -> tuple[str, str]:
    store = client.app.state.rt.store  # type: ignore[attr-defined]
    company = accounts.find_company(store, "default")
    assert company
    created, key = accounts.create_app(store, company["id"], "photo", 10_000)
    return created["app_id"], key


def call_xml(url: str, method: str = "face_crop", params: str = "size=128") -> str:
    return (
        f'<image_process_call><image_url order="1">{url}</image_url><methods_list>'
        f'<method order="1"><name>{method}</name><params>{params}</params></method>'
        "</methods_list></image_process_call>"
    )


def parse(resp: Any) -> dict[str, str]:
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/xml")
    root = ET.fromstring(resp.content)
    assert root.tag == "image_process_response"
    out = {child.tag: (child.text or "") for child in root}
    assert set(out) <= TAGS
    return out


def addtask(client: TestClient, **form: str) -> dict[str, str]:
    return parse(client.post("/compat/photo/addtask", data=form, headers={"X-API-Key": ""}))


def poll(client: TestClient, request_id: str) -> dict[str, str]:
    for _ in range(150):
        out = parse(client.get("/compat/photo/getresult", params={"request_id": request_id}))
        if out["status"] != "InProgress":
            return out
        time.sleep(0.1)
    raise AssertionError("still InProgress")


def test_crop_round_trip_with_key(client: TestClient, app: tuple[str, str], image_url: str) -> None:
    app_id, key = app
    added = addtask(client, APP_ID=app_id, KEY=key, DATA=call_xml(image_url))
    assert added["status"] == "OK" and added["err_code"] == "0" and added["request_id"]
    done = poll(client, added["request_id"])
    assert done["status"] == "OK" and done["err_code"] == "0"
    for tag in ("result_url", "thumb1_url", "thumb2_url", "thumb_ini1_url", "thumb_ini2_url"):
        path = "/" + done[tag].split("/", 3)[3]
        assert client.get(path).headers["content-type"] == "image/jpeg"


def test_signed_call_and_its_replay(
    client: TestClient, app: tuple[str, str], image_url: str
) -> None:
    app_id, key = app
    data = call_xml(image_url, "face_detection", "")
    sign = hmac.new(key.encode(), data.encode(), hashlib.sha256).hexdigest()
    first = addtask(client, APP_ID=app_id, SIGN_DATA=sign, DATA=data)
    assert first["status"] == "OK"
    assert poll(client, first["request_id"])["status"] == "OK"
    replay = addtask(client, APP_ID=app_id, SIGN_DATA=sign, DATA=data)
    assert (replay["status"], replay["err_code"]) == ("SecurityError", "613")
    bad = addtask(client, APP_ID=app_id, SIGN_DATA="00" * 32, DATA=data)
    assert (bad["status"], bad["err_code"]) == ("SecurityError", "613")


@pytest.mark.parametrize(
    ("form", "status", "code"),
    [
        ({"DATA": "<image_process_call/>"}, "SecurityError", "614"),
        ({"APP_ID": "app_x", "DATA": "<x/>"}, "SecurityError", "614"),
        ({"APP_ID": "app_nobody", "SIGN_DATA": "ab", "DATA": "<x/>"}, "SecurityError", "606"),
    ],
)
def test_security_errors_have_the_seed_codes(
    client: TestClient, form: dict[str, str], status: str, code: str
) -> None:
    out = addtask(client, **form)
    assert (out["status"], out["err_code"]) == (status, code)


def test_processing_errors_have_the_seed_codes(
    client: TestClient, app: tuple[str, str], image_url: str
) -> None:
    app_id, key = app
    unknown = addtask(client, APP_ID=app_id, KEY=key, DATA=call_xml(image_url, "teleport", ""))
    assert (unknown["status"], unknown["err_code"]) == ("Error", "-3")
    template = addtask(
        client, APP_ID=app_id, KEY=key, DATA=call_xml(image_url, "collage", "template_name=nope")
    )
    assert (template["status"], template["err_code"]) == ("Error", "-1003")
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>'
        "<image_process_call><image_url>&b;</image_url></image_process_call>"
    )
    hostile = addtask(client, APP_ID=app_id, KEY=key, DATA=bomb)
    assert (hostile["status"], hostile["err_code"]) == ("Error", "-3")


def test_a_failed_task_renders_error_with_its_code(
    client: TestClient, app: tuple[str, str]
) -> None:
    app_id, key = app
    added = addtask(
        client,
        APP_ID=app_id,
        KEY=key,
        DATA=call_xml("http://127.0.0.1:9/nothing.jpg", "face_detection", ""),
    )
    done = poll(client, added["request_id"])
    assert done["status"] == "Error" and done["err_code"] == "-2"  # download error


def test_unknown_request_id_is_wrong_id(client: TestClient) -> None:
    out = parse(client.get("/compat/photo/getresult", params={"request_id": "nope"}))
    assert out["status"] == "WrongID"


def test_no_face_is_minus_1000(client: TestClient, app: tuple[str, str], photo_server: str) -> None:
    app_id, key = app
    added = addtask(client, APP_ID=app_id, KEY=key, DATA=call_xml(photo_server + "/dogs.jpg"))
    done = poll(client, added["request_id"])
    assert (done["status"], done["err_code"]) == ("Error", "-1000")
