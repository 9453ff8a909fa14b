"""Oz data containers (seed 002's OzCapsula errors 13, 14 and 3-5): a signed zip of payload.json
and media, verified with a session token, becomes a folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from oz_client import OZ, container, oz_app, oz_error, oz_user, photo, post_container


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with oz_app(tmp_path_factory) as c:
        yield c


@pytest.fixture(scope="module")
def oz(client: TestClient) -> dict[str, str]:
    return oz_user(client, "oz.containers@example.com")


def test_container_uploads_and_each_failure_code(
    client: TestClient, oz: dict[str, str], testdata: Path
) -> None:
    token = client.get(f"{OZ}/authorize/session_token", headers=oz).json()["session_token"]
    img = photo(testdata, "img1.jpg")
    good = container(token, {"selfie.jpg": img}, {"selfie.jpg": ["photo_selfie"]})
    for path in ("/folders/", "/folders/from_container/"):
        resp = post_container(client, oz, good, path)
        assert resp.status_code == 201, resp.text
        [media] = resp.json()["media"]
        assert media["original_name"] == "selfie.jpg" and media["tags"] == ["photo_selfie"]
    oz_error(post_container(client, oz, b""), 400, 13)
    oz_error(post_container(client, oz, b"PK\x03\x04 not really a zip"), 400, 5)
    oz_error(post_container(client, oz, good[: len(good) // 2]), 400, 5)
    oz_error(
        post_container(client, oz, container(token, {"a.jpg": img}, with_payload=False)), 400, 3
    )
    oz_error(post_container(client, oz, container(token, {})), 400, 4)
    unsigned = container(token, {"a.jpg": img}, signature="0" * 64)
    assert oz_error(post_container(client, oz, unsigned), 400, 14)["error_message"] == (
        "Invalid signature."
    )
    wrong_hash = container(token, {"a.jpg": img}, hashes={"a.jpg": "0" * 64})
    assert oz_error(post_container(client, oz, wrong_hash), 400, 14)["details"] == {
        "media": "a.jpg"
    }
    forged = container("9999999999.00.feed", {"a.jpg": img})
    oz_error(post_container(client, oz, forged), 400, 14)
    stray = container(token, {"a.jpg": img}, {"b.jpg": ["photo_selfie"]})
    assert oz_error(post_container(client, oz, stray), 400, 4)["details"]["media"] == ["b.jpg"]


def test_a_container_signed_for_one_company_is_refused_to_another(
    client: TestClient, oz: dict[str, str], testdata: Path
) -> None:
    token = client.get(f"{OZ}/authorize/session_token/", headers=oz).json()["session_token"]
    rival = oz_user(client, "oz@rival-container.test", company="oz-rival-container")
    media = {"a.jpg": photo(testdata, "img1.jpg")}
    oz_error(post_container(client, rival, container(token, media)), 400, 14)
