"""Face crops on enroll: the server's privacy setting (FACEPLANE_ENROLL_KEEP_CROPS) wins over a
caller's `keep_crop=true`, on the native route, as a task and on AILab's face add (item 13)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ailab_support import DB, ok
from faceplane.settings import Settings
from support import authed_client

PORTRAIT = "faces/deepface/images/img1.jpg"


def app(tmp_path_factory: pytest.TempPathFactory, keep: bool) -> Iterator[TestClient]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("crops") / "data",
        workers=1,
        quality_min_inter_eye_px=16,
        enroll_keep_crops=keep,
    )
    with authed_client(settings) as c:
        yield c


@pytest.fixture(scope="module")
def private(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """A server that keeps no crops (the default)."""
    yield from app(tmp_path_factory, keep=False)


@pytest.fixture(scope="module")
def keeping(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """A server configured to keep crops."""
    yield from app(tmp_path_factory, keep=True)


@pytest.fixture
def portrait(testdata: Path) -> bytes:
    return (testdata / PORTRAIT).read_bytes()


def crop_files(client: TestClient) -> list[Path]:
    """Every blob stored under collections/: that is where enrolled face crops go."""
    root = client.app.state.rt.settings.data_dir / "blobs" / "collections"  # type: ignore[attr-defined]
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def gallery(client: TestClient, name: str) -> tuple[str, str]:
    cid = client.post("/v1/collections", json={"name": name}).json()["id"]
    sid = client.post(f"/v1/collections/{cid}/subjects", json={"name": "p"}).json()["id"]
    return cid, sid


def enroll(client: TestClient, cid: str, sid: str, photo: bytes, **form: str) -> dict[str, Any]:
    resp = client.post(
        f"/v1/collections/{cid}/subjects/{sid}/faces",
        files={"image": ("f.jpg", photo)},
        data=form,
    )
    assert resp.status_code == 201, resp.text
    assert "crop" not in resp.text and "/v1/blobs/" not in resp.text  # no crop URL, ever
    return dict(resp.json())


def has_crop(client: TestClient, cid: str, token: str) -> bool:
    return bool(client.get(f"/v1/collections/{cid}/faces/{token}").json()["has_crop"])


def test_keep_crop_true_stores_no_crop_when_the_server_keeps_none(
    private: TestClient, portrait: bytes
) -> None:
    cid, sid = gallery(private, "native")
    out = enroll(private, cid, sid, portrait, keep_crop="true")
    assert not has_crop(private, cid, out["face_token"])
    assert crop_files(private) == []


def test_an_enroll_task_with_keep_crop_stores_no_crop_either(
    private: TestClient, portrait: bytes
) -> None:
    cid, sid = gallery(private, "task")
    task = private.post(
        "/v1/tasks",
        json={
            "operation": "enroll",
            "input": {"image": {"base64": base64.b64encode(portrait).decode()}},
            "options": {"collection_id": cid, "subject_id": sid, "keep_crop": True},
        },
    ).json()
    done = private.get(f"/v1/tasks/{task['request_id']}", params={"wait_s": 60}).json()
    assert done["status"] == "succeeded", done
    assert not has_crop(private, cid, done["result"]["face_token"])
    assert crop_files(private) == []


def test_ailab_face_add_with_keep_crop_stores_no_crop(private: TestClient, portrait: bytes) -> None:
    ok(private.post(f"{DB}/group/create", data={"group_id": "crops"}))
    user = {"group_id": "crops", "uid": "someone"}
    ok(private.post(f"{DB}/user/add", data=user))
    added = private.post(
        f"{DB}/face/add", data={**user, "keep_crop": "true"}, files={"image": ("1.jpg", portrait)}
    )
    assert ok(added)["data"]["face_token"] and "/v1/blobs/" not in added.text
    assert crop_files(private) == []


def test_a_server_that_keeps_crops_keeps_one_unless_the_caller_declines(
    keeping: TestClient, portrait: bytes
) -> None:
    cid, sid = gallery(keeping, "kept")
    kept = enroll(keeping, cid, sid, portrait)["face_token"]
    declined = enroll(keeping, cid, sid, portrait, keep_crop="false")["face_token"]
    assert has_crop(keeping, cid, kept) and not has_crop(keeping, cid, declined)
    assert len(crop_files(keeping)) == 1
