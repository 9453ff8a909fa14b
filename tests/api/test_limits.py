"""Every `*_LIMIT_EXCEEDED` code, reached through the HTTP API on a server with small limits."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from faceplane.errors import Err
from faceplane.services import accounts
from faceplane.settings import Settings
from support import authed_client

GROUP = "faces/insightface/t1.jpg"  # 6 faces, more than 2 of them fit for a gallery
JOHNS = "faces/dlib/examples/johns"
# The codes this module reaches; a new *_LIMIT_EXCEEDED code must get a test here.
COVERED = {
    "COLLECTION_LIMIT_EXCEEDED",
    "SUBJECT_LIMIT_EXCEEDED",
    "FACE_LIMIT_EXCEEDED",
    "BATCH_LIMIT_EXCEEDED",
    "RATE_LIMIT_EXCEEDED",
}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """A server whose limits are small enough to reach in a test."""
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("limits") / "data",
        workers=0,
        max_collections=3,
        collection_max_subjects=2,
        collection_max_faces=3,
        subject_max_faces=2,
        batch_max_items=2,
        quality_min_inter_eye_px=16,
    )
    with authed_client(settings) as c:
        yield c


def new_collection(client: TestClient, name: str) -> str:
    resp = client.post("/v1/collections", json={"name": name, "kind": "gallery"})
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


def new_subject(client: TestClient, cid: str, name: str) -> str:
    resp = client.post(f"/v1/collections/{cid}/subjects", json={"name": name})
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


def enroll(client: TestClient, cid: str, sid: str, photo: Path, face: str = "largest") -> Any:
    return client.post(
        f"/v1/collections/{cid}/subjects/{sid}/faces",
        files={"image": (photo.name, photo.read_bytes())},
        data={"face": face},
    )


def face_count(client: TestClient, cid: str, sid: str) -> int:
    return int(client.get(f"/v1/collections/{cid}/subjects/{sid}").json()["faces"])


def john(testdata: Path, n: int) -> Path:
    """The n-th photo of the first John."""
    person = sorted(p for p in (testdata / JOHNS).iterdir() if p.is_dir())[0]
    return sorted(person.glob("*.jpg"))[n]


def error(resp: Any) -> dict[str, Any]:
    body = resp.json()
    assert "error" in body, body
    return dict(body["error"])


def test_every_limit_code_of_the_catalogue_is_covered_here() -> None:
    codes = {e.name for e in Err if e.name.endswith("_LIMIT_EXCEEDED")}
    assert codes == COVERED


def fit_faces(client: TestClient, photo: Path) -> int:
    """How many faces of the photo detect reports without quality issues (enroll takes them)."""
    resp = client.post("/v1/detect", files={"image": (photo.name, photo.read_bytes())})
    assert resp.status_code == 200, resp.text
    return sum(not f["quality"]["issues"] for f in resp.json()["faces"])


def test_face_all_over_the_subject_limit_enrolls_nothing(
    client: TestClient, testdata: Path
) -> None:
    fit = fit_faces(client, testdata / GROUP)
    assert fit > 2
    cid = new_collection(client, "group")
    sid = new_subject(client, cid, "everyone")
    resp = enroll(client, cid, sid, testdata / GROUP, face="all")
    assert resp.status_code == 409, resp.text
    err = error(resp)
    assert err["code"] == "FACE_LIMIT_EXCEEDED"
    assert err["details"] == {"scope": "subject", "limit": 2, "existing": 0, "incoming": fit}
    assert face_count(client, cid, sid) == 0
    assert client.delete(f"/v1/collections/{cid}").status_code == 204


def test_the_subject_limit_counts_the_faces_already_there(
    client: TestClient, testdata: Path
) -> None:
    cid = new_collection(client, "one person")
    sid = new_subject(client, cid, "john")
    assert enroll(client, cid, sid, john(testdata, 0)).status_code == 201
    # The group's faces would pass the limit: refused whole, the first face stays alone.
    over = enroll(client, cid, sid, testdata / GROUP, face="all")
    assert error(over)["details"] == {
        "scope": "subject",
        "limit": 2,
        "existing": 1,
        "incoming": fit_faces(client, testdata / GROUP),
    }
    assert enroll(client, cid, sid, john(testdata, 1)).status_code == 201
    third = enroll(client, cid, sid, john(testdata, 2))
    assert third.status_code == 409 and error(third)["code"] == "FACE_LIMIT_EXCEEDED"
    assert error(third)["details"]["existing"] == 2
    assert face_count(client, cid, sid) == 2
    assert client.delete(f"/v1/collections/{cid}").status_code == 204


def test_the_collection_face_limit_and_moving_into_a_full_subject(
    client: TestClient, testdata: Path
) -> None:
    cid = new_collection(client, "small gallery")
    a, b = new_subject(client, cid, "a"), new_subject(client, cid, "b")
    tokens = [enroll(client, cid, a, john(testdata, n)).json()["face_token"] for n in (0, 1)]
    assert enroll(client, cid, b, john(testdata, 2)).status_code == 201
    full = enroll(client, cid, b, john(testdata, 3))
    assert full.status_code == 409
    assert error(full)["code"] == "FACE_LIMIT_EXCEEDED"
    assert error(full)["details"] == {
        "scope": "collection",
        "limit": 3,
        "existing": 3,
        "incoming": 1,
    }
    b_token = client.get(f"/v1/collections/{cid}/subjects/{b}/faces").json()["faces"][0]
    moved = client.patch(
        f"/v1/collections/{cid}/faces/{b_token['face_token']}", json={"subject_id": a}
    )
    assert moved.status_code == 409 and error(moved)["details"]["scope"] == "subject"
    # Giving a face to the subject it already belongs to adds nothing, so it is no overflow.
    same = client.patch(f"/v1/collections/{cid}/faces/{tokens[0]}", json={"subject_id": a})
    assert same.status_code == 200, same.text
    assert client.delete(f"/v1/collections/{cid}").status_code == 204


def test_subjects_per_collection_are_limited(client: TestClient) -> None:
    cid = new_collection(client, "two people")
    new_subject(client, cid, "first")
    new_subject(client, cid, "second")
    resp = client.post(f"/v1/collections/{cid}/subjects", json={"name": "third"})
    assert resp.status_code == 409
    assert error(resp)["code"] == "SUBJECT_LIMIT_EXCEEDED"
    assert error(resp)["details"]["limit"] == 2
    assert client.delete(f"/v1/collections/{cid}").status_code == 204


def test_collections_per_company_are_limited(client: TestClient) -> None:
    existing = len(client.get("/v1/collections").json()["collections"])
    made = [new_collection(client, f"collection {i}") for i in range(3 - existing)]
    resp = client.post("/v1/collections", json={"name": "one too many", "kind": "gallery"})
    assert resp.status_code == 409
    assert error(resp)["code"] == "COLLECTION_LIMIT_EXCEEDED"
    assert error(resp)["details"]["limit"] == 3
    for cid in made:
        assert client.delete(f"/v1/collections/{cid}").status_code == 204
    assert client.post("/v1/collections", json={"name": "room again"}).status_code == 201


def test_a_batch_over_the_item_limit_queues_nothing(client: TestClient, astronaut: bytes) -> None:
    image = {"base64": base64.b64encode(astronaut).decode()}
    items = [{"operation": "detect", "input": {"image": image}} for _ in range(3)]
    resp = client.post("/v1/tasks:batch", json=items)
    assert resp.status_code == 400
    assert error(resp)["code"] == "BATCH_LIMIT_EXCEEDED"
    assert error(resp)["details"] == {"items": 3, "max_items": 2}
    assert client.get("/v1/tasks").json()["tasks"] == []


def test_an_app_over_its_rate_limit_is_told_to_wait(client: TestClient) -> None:
    rt = client.app.state.rt  # type: ignore[attr-defined]
    company = accounts.find_company(rt, "default")
    assert company is not None
    _, key = accounts.create_app(rt, company["id"], "slow", 2)
    codes = [client.get("/v1/me", headers={"X-API-Key": key}).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    over = client.get("/v1/me", headers={"X-API-Key": key})
    assert error(over)["code"] == "RATE_LIMIT_EXCEEDED"
