"""AILabTools face database: groups, users, faces and 1:N search, in the seed's envelope."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ailab_support import DB, DEEPFACE, failed, ok
from faceplane.settings import Settings
from support import authed_client


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("ailab-db") / "data", workers=0)
    with authed_client(settings) as c:
        yield c


def test_face_database_round_trip(client: TestClient, testdata: Path, astronaut: bytes) -> None:
    root = testdata / DEEPFACE
    group = ok(client.post(f"{DB}/group/create", data={"group_id": "stars"}))["data"]
    assert group["group_id"] == "stars" and group["user_num"] == group["face_num"] == 0
    failed(
        client.post(f"{DB}/group/create", data={"group_id": "stars"}),
        "ERROR_USER_GROUP_ALREADY_EXISTS",
    )
    failed(client.post(f"{DB}/group/create", data={}), "MISSING_PARAMETERS")
    failed(client.post(f"{DB}/group/create", data={"group_id": " "}), "PARAMETERS_CANNOT_EMPTY")
    assert "stars" in ok(client.get(f"{DB}/group/list"))["data"]["group_id_list"]

    user = {"group_id": "stars", "uid": "angelina"}
    assert ok(client.post(f"{DB}/user/add", data={**user, "user_info": "actor"}))["data"]["uid"]
    failed(client.post(f"{DB}/user/add", data=user), "ERROR_USER_ALREADY_EXISTS")
    failed(
        client.post(f"{DB}/user/add", data={**user, "group_id": "nope"}),
        "ERROR_USER_GROUP_NOT_FOUND",
        "There is no group 'nope'.",
    )
    users = ok(client.get(f"{DB}/user/list", params={"group_id": "stars"}))["data"]["users"]
    assert users == [{"uid": "angelina", "face_num": 0}]

    added = client.post(
        f"{DB}/face/add", data=user, files={"image": ("1.jpg", (root / "img1.jpg").read_bytes())}
    )
    token = ok(added)["data"]["face_token"]
    assert token and ok(added)["data"]["faces"][0]["face_token"] == token
    failed(
        client.post(
            f"{DB}/face/add", data={**user, "uid": "nobody"}, files={"image": ("a", astronaut)}
        ),
        "ERROR_USER_NOT_FOUND",
        "There is no user 'nobody' in group 'stars'.",
    )
    users = ok(client.get(f"{DB}/user/list", params={"group_id": "stars"}))["data"]["users"]
    assert users == [{"uid": "angelina", "face_num": 1}]

    probe = {"image": ("2.jpg", (root / "img2.jpg").read_bytes())}
    found = ok(client.post(f"{DB}/search", data={"group_id": "stars"}, files=probe))["data"]
    assert found["group_id"] == "stars"
    best = found["faces"][0]["user_list"][0]
    assert best["uid"] == "angelina" and best["face_token"] == token
    assert best["score"] >= found["faces"][0]["threshold"]
    stranger = client.post(
        f"{DB}/search", data={"group_id": "stars"}, files={"image": ("a", astronaut)}
    )
    assert ok(stranger)["data"]["faces"][0]["user_list"] == []
    failed(client.post(f"{DB}/search", data={"group_id": "stars"}), "MISSING_PARAMETERS")
    failed(
        client.post(f"{DB}/search", data={"group_id": "nope"}, files=probe),
        "ERROR_USER_GROUP_NOT_FOUND",
    )

    gone = {"group_id": "stars", "face_token": "no-such-token"}
    failed(client.post(f"{DB}/face/delete", data=gone), "ERROR_FACE_TOKEN_NOT_FOUND")
    ok(client.post(f"{DB}/face/delete", data={"group_id": "stars", "face_token": token}))
    ok(client.post(f"{DB}/user/delete", data=user))
    failed(client.post(f"{DB}/user/delete", data=user), "ERROR_USER_NOT_FOUND")
    ok(client.post(f"{DB}/group/delete", data={"group_id": "stars"}))
    failed(
        client.post(f"{DB}/group/delete", data={"group_id": "stars"}), "ERROR_USER_GROUP_NOT_FOUND"
    )
    failed(
        client.get(f"{DB}/user/list", params={"group_id": "stars"}), "ERROR_USER_GROUP_NOT_FOUND"
    )


def test_group_and_user_lists_page_with_next_cursor(client: TestClient) -> None:
    names = [f"page-{i}" for i in range(3)]
    for name in names:
        ok(client.post(f"{DB}/group/create", data={"group_id": name}))
        ok(client.post(f"{DB}/user/add", data={"group_id": names[0], "uid": name}))
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = ok(client.get(f"{DB}/group/list", params=params))["data"]
        assert len(page["groups"]) <= 2 and page["group_id_list"] == [
            g["group_id"] for g in page["groups"]
        ]
        seen += page["group_id_list"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert set(names) <= set(seen) and len(seen) == len(set(seen))
    first = ok(client.get(f"{DB}/user/list", params={"group_id": names[0], "limit": 2}))["data"]
    rest = ok(
        client.get(
            f"{DB}/user/list",
            params={"group_id": names[0], "limit": 2, "cursor": first["next_cursor"]},
        )
    )["data"]
    assert sorted(u["uid"] for u in first["users"] + rest["users"]) == names
    assert rest["next_cursor"] is None


def test_the_quality_gate_speaks_the_seeds_codes(client: TestClient, testdata: Path) -> None:
    """A real face in sunglasses and a real turned face are refused with AILabTools' codes,
    every reason in the details."""
    ok(client.post(f"{DB}/group/create", data={"group_id": "gate"}))
    user = {"group_id": "gate", "uid": "someone"}
    ok(client.post(f"{DB}/user/add", data=user))
    lfw = testdata / "lfw_view1/images"
    shades = (lfw / "Jessica_Lange/Jessica_Lange_0001.jpg").read_bytes()
    body = failed(
        client.post(f"{DB}/face/add", data=user, files={"image": ("s.jpg", shades)}),
        "ERROR_LEFT_EYE_OCCLUSION_TOO_HIGH",
    )
    assert "occlusion.right_eye" in body["error_detail"]["message"]
    turned = (lfw / "Tom_Daschle/Tom_Daschle_0021.jpg").read_bytes()
    failed(
        client.post(f"{DB}/face/add", data=user, files={"image": ("t.jpg", turned)}),
        "ERROR_FACE_NOT_FACING_FORWARD",
    )
    # The same photo at NONE is taken.
    lax = {**user, "quality_threshold": "NONE"}
    ok(client.post(f"{DB}/face/add", data=lax, files={"image": ("t.jpg", turned)}))
