"""Collections, subjects, faces, enroll with its quality gate, 1:N search and blacklists."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageFilter
from sqlalchemy import update

from faceplane.settings import Settings
from faceplane.store.db import collections
from support import authed_client

JOHNS = "faces/dlib/examples/johns"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("coll") / "data", workers=1, quality_min_inter_eye_px=16
    )
    with authed_client(settings) as c:
        yield c


def b64(data: bytes) -> dict[str, str]:
    return {"base64": base64.b64encode(data).decode()}


def new_collection(client: TestClient, name: str, kind: str = "gallery") -> str:
    resp = client.post("/v1/collections", json={"name": name, "kind": kind})
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


def new_subject(client: TestClient, cid: str, name: str) -> str:
    resp = client.post(f"/v1/collections/{cid}/subjects", json={"name": name})
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


def enroll(client: TestClient, cid: str, sid: str, data: bytes, **opts: Any) -> Any:
    return client.post(
        f"/v1/collections/{cid}/subjects/{sid}/faces", files={"image": ("f.jpg", data)}, data=opts
    )


def search(client: TestClient, cid: str, data: bytes, **opts: Any) -> dict[str, Any]:
    resp = client.post(f"/v1/collections/{cid}/search", files={"image": ("q.jpg", data)}, data=opts)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def test_crud_names_are_unique_and_pages_work(client: TestClient) -> None:
    cid = new_collection(client, "crud")
    dup = client.post("/v1/collections", json={"name": "crud"})
    assert dup.status_code == 409 and dup.json()["error"]["code"] == "COLLECTION_EXISTS"
    sids = [new_subject(client, cid, f"person {i}") for i in range(3)]
    dup = client.post(f"/v1/collections/{cid}/subjects", json={"name": "person 0"})
    assert dup.status_code == 409 and dup.json()["error"]["code"] == "SUBJECT_EXISTS"
    page = client.get(f"/v1/collections/{cid}/subjects", params={"limit": 2}).json()
    assert len(page["subjects"]) == 2 and page["next_cursor"]
    rest = client.get(
        f"/v1/collections/{cid}/subjects", params={"limit": 2, "cursor": page["next_cursor"]}
    ).json()
    assert {s["id"] for s in page["subjects"] + rest["subjects"]} == set(sids)
    renamed = client.patch(f"/v1/collections/{cid}", json={"name": "crud renamed"}).json()
    assert renamed["name"] == "crud renamed"
    moved = client.patch(f"/v1/collections/{cid}/subjects/{sids[0]}", json={"name": "p0"})
    assert moved.json()["name"] == "p0"
    assert client.delete(f"/v1/collections/{cid}").status_code == 204
    gone = client.get(f"/v1/collections/{cid}")
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "COLLECTION_NOT_FOUND"


def test_unknown_ids_get_their_not_found_codes(client: TestClient) -> None:
    cid = new_collection(client, "ids")
    assert (
        client.get(f"/v1/collections/{cid}/subjects/nope").json()["error"]["code"]
        == "SUBJECT_NOT_FOUND"
    )
    assert (
        client.get(f"/v1/collections/{cid}/faces/nope").json()["error"]["code"]
        == "FACE_TOKEN_NOT_FOUND"
    )


def test_enroll_and_identify_the_johns(client: TestClient, testdata: Path) -> None:
    cid = new_collection(client, "johns")
    people = sorted(p for p in (testdata / JOHNS).iterdir() if p.is_dir())
    probes = {}
    for person in people:
        sid = new_subject(client, cid, person.name)
        photos = sorted(person.glob("*.jpg"))
        for photo in photos[:3]:
            resp = enroll(client, cid, sid, photo.read_bytes())
            assert resp.status_code == 201, resp.text
            assert resp.json()["face_token"]
        probes[person.name] = photos[-1]
    for name, probe in probes.items():
        result = search(client, cid, probe.read_bytes(), far="0.001")
        matches = result["faces"][0]["matches"]
        assert matches and matches[0]["subject_name"] == name, (name, matches)
        assert matches[0]["similarity"] >= result["faces"][0]["threshold"]


def test_a_stranger_gets_an_explicit_no_match(
    client: TestClient, testdata: Path, astronaut: bytes
) -> None:
    cid = new_collection(client, "strangers")
    person = sorted(p for p in (testdata / JOHNS).iterdir() if p.is_dir())[0]
    sid = new_subject(client, cid, person.name)
    for photo in sorted(person.glob("*.jpg"))[:3]:
        assert enroll(client, cid, sid, photo.read_bytes()).status_code == 201
    result = search(client, cid, astronaut)
    face = result["faces"][0]
    assert face["matches"] == [] and face["threshold"] > 0 and face["box"]


def test_quality_gate_refuses_a_blurry_face_with_its_reasons(
    client: TestClient, astronaut: bytes
) -> None:
    cid = new_collection(client, "gate")
    sid = new_subject(client, cid, "eileen")
    img = Image.open(io.BytesIO(astronaut)).filter(ImageFilter.GaussianBlur(6))
    buf = io.BytesIO()
    img.save(buf, format="JPEG")
    resp = enroll(client, cid, sid, buf.getvalue())
    assert resp.status_code == 422, resp.text
    err = resp.json()["error"]
    assert err["code"] == "FACE_BLURRY"
    assert err["details"]["reasons"][0]["measure"] == "sharpness"


def test_search_by_face_token_and_embedding_and_delete_is_real(
    client: TestClient, astronaut: bytes
) -> None:
    cid = new_collection(client, "tokens")
    sid = new_subject(client, cid, "eileen")
    token = enroll(client, cid, sid, astronaut).json()["face_token"]
    by_token = client.post(f"/v1/collections/{cid}/search", json={"face_token": token}).json()
    assert by_token["faces"][0]["matches"][0]["subject_id"] == sid
    emb = client.post(
        "/v1/detect", files={"image": ("a", astronaut)}, data={"return_embedding": "true"}
    ).json()["faces"][0]["embedding"]
    by_emb = client.post(f"/v1/collections/{cid}/search", json={"embedding": emb}).json()
    assert by_emb["faces"][0]["matches"][0]["face_token"] == token
    assert client.delete(f"/v1/collections/{cid}/faces/{token}").status_code == 204
    after = client.post(f"/v1/collections/{cid}/search", json={"embedding": emb}).json()
    assert after["faces"][0]["matches"] == []


def test_blacklist_check_hits_only_blacklisted_people(
    client: TestClient, testdata: Path, astronaut: bytes
) -> None:
    cid = new_collection(client, "watch", kind="blacklist")
    person = sorted(p for p in (testdata / JOHNS).iterdir() if p.is_dir())[1]
    sid = new_subject(client, cid, person.name)
    photos = sorted(person.glob("*.jpg"))
    enroll(client, cid, sid, photos[0].read_bytes())
    hit = client.post("/v1/blacklist/check", files={"image": ("q", photos[-1].read_bytes())})
    body = hit.json()
    assert body["hit"] is True and body["matches"][0]["subject_name"] == person.name
    miss = client.post("/v1/blacklist/check", files={"image": ("q", astronaut)}).json()
    assert miss["hit"] is False and miss["matches"] == []


def test_search_and_enroll_run_as_tasks(client: TestClient, astronaut: bytes) -> None:
    cid = new_collection(client, "tasks")
    sid = new_subject(client, cid, "eileen")
    task = client.post(
        "/v1/tasks",
        json={
            "operation": "enroll",
            "input": {"image": b64(astronaut)},
            "options": {"collection_id": cid, "subject_id": sid},
        },
    )
    done = client.get(f"/v1/tasks/{task.json()['request_id']}", params={"wait_s": 30}).json()
    assert done["status"] == "succeeded", done
    task = client.post(
        "/v1/tasks",
        json={
            "operation": "search",
            "input": {"image": b64(astronaut)},
            "options": {"collection_id": cid},
        },
    )
    done = client.get(f"/v1/tasks/{task.json()['request_id']}", params={"wait_s": 30}).json()
    assert done["result"]["faces"][0]["matches"][0]["subject_id"] == sid


def test_far_thresholds_are_ordered(client: TestClient, astronaut: bytes) -> None:
    cid = new_collection(client, "far")
    strict = search(client, cid, astronaut, far="0.00001")["faces"][0]["threshold"]
    loose = search(client, cid, astronaut, far="0.001")["faces"][0]["threshold"]
    assert 0 < loose < strict < 1
    bad = client.post(
        f"/v1/collections/{cid}/search", files={"image": ("q", astronaut)}, data={"far": "1e-12"}
    )
    assert bad.json()["error"]["code"] == "INVALID_ARGUMENT"
    assert np.isfinite(strict)


def pin_to_another_space(client: TestClient, cid: str) -> str:
    """Pretend the collection was made under another embedder: rewrite its pinned space."""
    store = client.app.state.rt.store  # type: ignore[attr-defined]
    with store.db.begin() as conn:
        conn.execute(
            update(collections).where(collections.c.id == cid).values(model="arcface_r100_v1")
        )
    return str(client.get(f"/v1/collections/{cid}").json()["model"])


def test_a_collection_of_another_embedding_space_refuses_search_and_enroll(
    client: TestClient, astronaut: bytes
) -> None:
    cid = new_collection(client, "other space")
    sid = new_subject(client, cid, "eileen")
    token = enroll(client, cid, sid, astronaut).json()["face_token"]
    ours = client.get(f"/v1/collections/{cid}").json()["model"]
    assert pin_to_another_space(client, cid) == "arcface_r100_v1" != ours
    expected = {"collection_id": cid, "collection_model": "arcface_r100_v1", "model": ours}
    for resp in (
        client.post(f"/v1/collections/{cid}/search", files={"image": ("q.jpg", astronaut)}),
        client.post(f"/v1/collections/{cid}/search", json={"face_token": token}),
        enroll(client, cid, sid, astronaut),
    ):
        assert resp.status_code == 409, resp.text
        err = resp.json()["error"]
        assert err["code"] == "EMBEDDING_MODEL_MISMATCH" and err["details"] == expected
    assert client.get(f"/v1/collections/{cid}/subjects/{sid}").json()["faces"] == 1
    assert client.delete(f"/v1/collections/{cid}").status_code == 204


def test_a_blacklist_of_another_embedding_space_is_no_silent_miss(
    client: TestClient, astronaut: bytes
) -> None:
    cid = new_collection(client, "old watch list", kind="blacklist")
    pin_to_another_space(client, cid)
    resp = client.post("/v1/blacklist/check", files={"image": ("q.jpg", astronaut)})
    assert resp.status_code == 409, resp.text
    assert resp.json()["error"]["code"] == "EMBEDDING_MODEL_MISMATCH"
    assert resp.json()["error"]["details"]["collection_id"] == cid
    assert client.delete(f"/v1/collections/{cid}").status_code == 204
