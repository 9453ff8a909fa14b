"""Pho.to compatible routes: addtask / getresult, exactly in the seed's XML, on a real photo."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from faceplane.errors import FaceplaneError
from faceplane.services import accounts
from faceplane.services.tasks import load_task_by_request_id
from faceplane.settings import Settings
from faceplane.store.db import tasks
from faceplane.tasks.runner import expire_tasks
from live import Server
from oz_client import analyse, new_folder, oz_user
from support import authed_client

GROUP_FACES = 6  # faces/insightface/t1.jpg

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
        "/group.jpg": (testdata / "faces/insightface/t1.jpg").read_bytes(),
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
    rt = client.app.state.rt  # type: ignore[attr-defined]
    company = accounts.find_company(rt, "default")
    assert company
    created, key = accounts.create_app(rt, company["id"], "photo", 10_000)
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


def test_unknown_request_id_is_wrong_id_naming_the_id_asked_for(client: TestClient) -> None:
    resp = client.get("/compat/photo/getresult", params={"request_id": "nope<&>"})
    out = parse(resp)
    assert (out["status"], out["err_code"]) == ("WrongID", "612")
    assert out["request_id"] == "nope<&>"  # the task asked about, not this call's own id
    assert resp.headers["x-request-id"] != "nope<&>"


def test_empty_request_id_is_wrong_id_without_a_request_id(client: TestClient) -> None:
    out = parse(client.get("/compat/photo/getresult", params={"request_id": ""}))
    assert (out["status"], out["err_code"]) == ("WrongID", "612")
    assert "request_id" not in out


def test_face_detection_result_url_is_a_json_document_with_the_faces(
    client: TestClient, app: tuple[str, str], image_url: str
) -> None:
    app_id, key = app
    added = addtask(client, APP_ID=app_id, KEY=key, DATA=call_xml(image_url, "face_detection", ""))
    done = poll(client, added["request_id"])
    assert (done["status"], done["err_code"]) == ("OK", "0")
    assert done["request_id"] == added["request_id"]
    assert set(done) == {"request_id", "status", "description", "err_code", "result_url"}
    path = "/" + done["result_url"].split("/", 3)[3]
    doc = client.get(path, headers={"X-API-Key": ""})  # the signed URL needs no credentials
    assert doc.status_code == 200
    assert doc.headers["content-type"] == "application/json"
    result = json.loads(doc.content)
    assert result["request_id"] == added["request_id"] and result["operation"] == "detect"
    assert result["image"] == {"width": 512, "height": 512}
    [face] = result["faces"]  # the astronaut: one face, in the upper middle of the picture
    box = face["box"]
    assert 150 < box["x"] + box["width"] / 2 < 300 and 50 < box["y"] + box["height"] / 2 < 200
    assert len(face["landmarks"]) == 5
    # Polled again, the same document is served.
    again = poll(client, added["request_id"])
    assert json.loads(client.get("/" + again["result_url"].split("/", 3)[3]).content) == result


def test_face_detection_of_a_group_photo_lists_every_face(
    client: TestClient, app: tuple[str, str], photo_server: str
) -> None:
    app_id, key = app
    added = addtask(
        client,
        APP_ID=app_id,
        KEY=key,
        DATA=call_xml(photo_server + "/group.jpg", "face_detection", ""),
    )
    done = poll(client, added["request_id"])
    assert done["status"] == "OK", done
    result = json.loads(client.get("/" + done["result_url"].split("/", 3)[3]).content)
    assert len(result["faces"]) == GROUP_FACES


def test_no_face_is_minus_1000(client: TestClient, app: tuple[str, str], photo_server: str) -> None:
    app_id, key = app
    added = addtask(client, APP_ID=app_id, KEY=key, DATA=call_xml(photo_server + "/dogs.jpg"))
    done = poll(client, added["request_id"])
    assert (done["status"], done["err_code"]) == ("Error", "-1000")


def test_an_expired_task_is_wrong_id_and_its_result_document_is_deleted(
    client: TestClient, app: tuple[str, str], image_url: str
) -> None:
    app_id, key = app
    added = addtask(client, APP_ID=app_id, KEY=key, DATA=call_xml(image_url, "face_detection", ""))
    done = poll(client, added["request_id"])
    document = "/" + done["result_url"].split("/", 3)[3]
    assert client.get(document).status_code == 200
    rt = client.app.state.rt  # type: ignore[attr-defined]
    row = load_task_by_request_id(rt, added["request_id"], "photo")
    expire_tasks(rt.store, now=row["expires_at"] + 1)  # the task's TTL has run out
    gone = parse(client.get("/compat/photo/getresult", params={"request_id": row["id"]}))
    assert (gone["status"], gone["err_code"], gone["request_id"]) == ("WrongID", "612", row["id"])
    assert client.get(document).status_code == 404  # deletion is real


# ---- getresult serves only Pho.to's own tasks ------------------------------------------------


def task_origin(rt: Any, task_id: str) -> str | None:
    """The route family recorded on a task's row."""
    with rt.store.db.connect() as conn:
        return conn.execute(select(tasks.c.origin).where(tasks.c.id == task_id)).scalar_one()


def other_families_task_ids(client: TestClient, astronaut: bytes, testdata: Path) -> dict[str, str]:
    """One finished task of each other route family (native, batch, AILab, Oz) of the default
    company, each with result or input images that a signed URL could expose."""
    photo64 = base64.b64encode(astronaut).decode()
    crop = {"operation": "crop", "input": {"image": {"base64": photo64}}}
    ids = {"native": client.post("/v1/tasks", json=crop).json()["request_id"]}
    [batched] = client.post("/v1/tasks:batch", json=[crop]).json()["tasks"]
    ids["batch"] = batched["request_id"]
    ailab = client.post(
        "/compat/ailab/api/common/async-task",
        data={"operation": "detect"},
        files={"image": ("a.jpg", astronaut)},
    )
    assert ailab.status_code == 200, ailab.text
    ids["ailab"] = ailab.json()["task_id"]
    oz = oz_user(client, "photo.getresult@example.com")
    folder = new_folder(client, oz, {"id": astronaut, "selfie": astronaut}, {})
    [analysis] = analyse(client, oz, folder["folder_id"], {"type": "biometry"}).json()
    ids["oz"] = analysis["analyse_id"]
    for task_id in ids.values():
        done = client.get(f"/v1/tasks/{task_id}", params={"wait_s": 60}).json()
        assert done["status"] == "succeeded", done
    return ids


def test_getresult_answers_wrong_id_for_every_other_route_familys_task(
    client: TestClient, app: tuple[str, str], image_url: str, astronaut: bytes, testdata: Path
) -> None:
    rt = client.app.state.rt  # type: ignore[attr-defined]
    ids = other_families_task_ids(client, astronaut, testdata)
    unknown = "0" * 32
    nobody = client.get(
        "/compat/photo/getresult", params={"request_id": unknown}, headers={"X-API-Key": ""}
    )
    for family, task_id in ids.items():
        resp = client.get(
            "/compat/photo/getresult", params={"request_id": task_id}, headers={"X-API-Key": ""}
        )
        out = parse(resp)
        assert (out["status"], out["err_code"]) == ("WrongID", "612"), family
        assert not any(tag.endswith("_url") for tag in out), family  # nothing signed
        # Exactly the answer an unknown id gets: the id tells nothing of the task.
        assert resp.content == nobody.content.replace(unknown.encode(), task_id.encode()), family
        with pytest.raises(FaceplaneError):  # and no result document was made for it
            rt.store.blobs.get(f"tasks/{task_id}/result/result.json")
    app_id, key = app
    added = addtask(client, APP_ID=app_id, KEY=key, DATA=call_xml(image_url))
    assert poll(client, added["request_id"])["status"] == "OK"  # Pho.to's own: served
    recorded = {
        family: task_origin(rt, task_id)
        for family, task_id in {**ids, "photo": added["request_id"]}.items()
    }
    assert recorded == {
        "native": "native",
        "batch": "native",
        "ailab": "ailab",
        "oz": "oz",
        "photo": "photo",
    }


def test_on_a_live_server_a_native_task_id_opens_nothing_on_getresult(
    tmp_path: Path, astronaut: bytes
) -> None:
    server = Server(tmp_path / "data")
    try:
        server.start()
        crop = {
            "operation": "crop",
            "input": {"image": {"base64": base64.b64encode(astronaut).decode()}},
        }
        task = httpx.post(server.base + "/v1/tasks", json=crop, headers=server.headers, timeout=30)
        task_id = task.json()["request_id"]
        done = httpx.get(
            f"{server.base}/v1/tasks/{task_id}",
            params={"wait_s": 60},
            headers=server.headers,
            timeout=90,
        ).json()
        assert done["status"] == "succeeded" and done["result_url"]  # it has images to expose
        # Another tenant, or nobody at all: the request id is all that is sent.
        resp = httpx.get(
            server.base + "/compat/photo/getresult", params={"request_id": task_id}, timeout=10
        )
        out = parse(resp)
        assert (out["status"], out["err_code"], out["request_id"]) == ("WrongID", "612", task_id)
        assert b"http" not in resp.content  # no signed URL of the result or of the input photo
    finally:
        server.stop()
