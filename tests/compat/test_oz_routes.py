"""Oz Forensics compatible routes (seeds 002, 004): the error shape and codes, token auth,
folders of media, BIOMETRY and COLLECTION analyses on real photos, containers, tenants."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import re
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import update

from faceplane.services import accounts
from faceplane.settings import Settings
from faceplane.store.db import tokens
from support import authed_client

OZ = "/compat/oz/api"
PASSWORD = "correct horse battery staple"
IMAGES = "faces/deepface/images"
HEX = re.compile(r"^[0-9a-f]{32}$")
ERROR_KEYS = {"error_code", "error_message", "details"}
COMMON_KEYS = {"time_created", "time_updated", "technical_meta_data"}
FOLDER_KEYS = COMMON_KEYS | {"folder_id", "company_id", "meta_data", "resolution_status"}
FOLDER_KEYS |= {"media", "analyses"}
MEDIA_KEYS = COMMON_KEYS | {"media_id", "folder_id", "media_type", "original_name"}
MEDIA_KEYS |= {"original_url", "tags", "meta_data"}
ANALYSIS_KEYS = COMMON_KEYS | {"analyse_id", "analysis_id", "folder_id", "type", "state"}
ANALYSIS_KEYS |= {"resolution_status", "results_data", "results_media", "source_media"}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("oz") / "data", workers=1, access_token_ttl_s=3600
    )
    with authed_client(settings) as c:
        yield c


def store_of(client: TestClient) -> Any:
    return client.app.state.rt.store  # type: ignore[attr-defined]


def new_user(client: TestClient, email: str, role: str = "client", company: str = "default") -> str:
    store = store_of(client)
    found = accounts.find_company(store, company)
    cid = found["id"] if found else accounts.create_company(store, company)["id"]
    accounts.create_user(store, cid, email, PASSWORD, role)
    return email


def login(client: TestClient, email: str) -> dict[str, Any]:
    resp = client.post(
        f"{OZ}/authorize/auth", json={"credentials": {"email": email, "password": PASSWORD}}
    )
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def as_token(token: str) -> dict[str, str]:
    # Blank the test client's API key so the Oz token is the only credential.
    return {"X-Forensic-Access-Token": token, "X-API-Key": ""}


@pytest.fixture(scope="module")
def oz(client: TestClient) -> dict[str, str]:
    return as_token(login(client, new_user(client, "oz.client@example.com"))["access_token"])


def oz_error(resp: Any, status: int, code: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == ERROR_KEYS and body["error_code"] == code, body
    assert isinstance(body["error_message"], str) and body["error_message"]
    assert body["details"] is None or isinstance(body["details"], dict)
    return dict(body)


def photo(testdata: Path, name: str) -> bytes:
    return (testdata / IMAGES / name).read_bytes()


def blank_png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (96, 96), "white").save(buf, format="PNG")
    return buf.getvalue()


def new_folder(
    client: TestClient, oz: dict[str, str], media: dict[str, bytes], tags: dict[str, list[str]]
) -> dict[str, Any]:
    files = {key: (f"{key}.jpg", data, "image/jpeg") for key, data in media.items()}
    payload = json.dumps({"media:tags": tags, "folder:meta_data": {"case": "t-1"}})
    resp = client.post(f"{OZ}/folders/", headers=oz, files=files, data={"payload": payload})
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def analyse(client: TestClient, oz: dict[str, str], fid: str, *items: dict[str, Any]) -> Any:
    return client.post(f"{OZ}/folders/{fid}/analyses/", headers=oz, json={"analyses": list(items)})


def finished(client: TestClient, oz: dict[str, str], aid: str) -> dict[str, Any]:
    """Wait on the analysis's task (its id is the task's request_id), then read it as Oz."""
    for _ in range(5):
        task = client.get(f"/v1/tasks/{aid}", params={"wait_s": 60}).json()
        if task["status"] in ("succeeded", "failed", "canceled"):
            break
    resp = client.get(f"{OZ}/analyses/{aid}/", headers=oz)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


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
    oz_error(client.post(f"{OZ}/authorize/auth", json=bad_type), 400, 5)
    renewed = client.post(
        f"{OZ}/authorize/refresh/", json={"expire_token": session["expire_token"]}
    )
    assert renewed.status_code == 200 and renewed.json()["access_token"] != session["access_token"]
    spent = {"expire_token": session["expire_token"]}
    oz_error(client.post(f"{OZ}/authorize/refresh/", json=spent), 401, 7)
    fresh = as_token(renewed.json()["access_token"])
    assert client.get(f"{OZ}/authorize/session_token/", headers=fresh).status_code == 200


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


def test_a_folder_keeps_its_media_and_tags(
    client: TestClient, oz: dict[str, str], testdata: Path
) -> None:
    img1, img2 = photo(testdata, "img1.jpg"), photo(testdata, "img2.jpg")
    tags = {"photo1": ["photo_id", "photo_id_front"], "photo2": ["photo_selfie"]}
    folder = new_folder(client, oz, {"photo1": img1, "photo2": img2}, tags)
    assert set(folder) == FOLDER_KEYS and HEX.match(folder["folder_id"])
    assert folder["resolution_status"] == "INITIAL" and folder["analyses"] == []
    assert folder["meta_data"] == {"case": "t-1"}
    assert [m["tags"] for m in folder["media"]] == [tags["photo1"], tags["photo2"]]
    for media, data in zip(folder["media"], (img1, img2), strict=True):
        assert set(media) == MEDIA_KEYS and media["media_type"] == "IMAGE_FOLDER"
        assert media["folder_id"] == folder["folder_id"] and media["original_name"].endswith(".jpg")
        url = urlsplit(media["original_url"])
        assert client.get(f"{url.path}?{url.query}").content == data
    dashed = str(uuid.UUID(folder["folder_id"]))
    again = client.get(f"{OZ}/folders/{dashed}", headers=oz).json()
    assert [m["media_id"] for m in again["media"]] == [m["media_id"] for m in folder["media"]]
    oz_error(client.get(f"{OZ}/folders/not-a-uuid/", headers=oz), 400, 4)
    oz_error(client.get(f"{OZ}/folders/{uuid.uuid4()}/", headers=oz), 404, 10)
    junk = {"photo1": ("a.jpg", b"not an image", "image/jpeg")}
    oz_error(client.post(f"{OZ}/folders/", headers=oz, files=junk), 415, 4)
    no_media = {"payload": (None, "{}")}  # multipart with a payload field and no file
    oz_error(client.post(f"{OZ}/folders/", headers=oz, files=no_media), 400, 3)
    stray = {"payload": json.dumps({"media:tags": {"photo9": ["photo_selfie"]}})}
    files = {"photo1": ("a.jpg", img1, "image/jpeg")}
    oz_error(client.post(f"{OZ}/folders/", headers=oz, files=files, data=stray), 400, 4)
    oz_error(client.post(f"{OZ}/folders/", headers=oz, json={"media": []}), 400, 4)


def test_biometry_matches_the_same_person_and_declines_others(
    client: TestClient, oz: dict[str, str], testdata: Path
) -> None:
    img1 = photo(testdata, "img1.jpg")
    same = new_folder(client, oz, {"id": img1, "selfie": photo(testdata, "img2.jpg")}, {})
    other = new_folder(client, oz, {"id": img1, "selfie": photo(testdata, "img18.jpg")}, {})
    faceless = new_folder(client, oz, {"a": blank_png(), "b": blank_png()}, {})
    started = {}
    for name, folder in (("same", same), ("other", other), ("faceless", faceless)):
        resp = analyse(client, oz, folder["folder_id"], {"type": "biometry"})
        assert resp.status_code == 201, resp.text
        [a] = resp.json()
        assert set(a) == ANALYSIS_KEYS and a["type"] == "BIOMETRY"
        assert a["state"] == "PROCESSING" and a["resolution_status"] == "PROCESSING"
        assert a["analyse_id"] == a["analysis_id"] and a["folder_id"] == folder["folder_id"]
        assert [m["media_id"] for m in a["source_media"]] == [
            m["media_id"] for m in folder["media"]
        ]
        started[name] = a["analyse_id"]
    match = finished(client, oz, started["same"])
    assert match["state"] == "FINISHED" and match["resolution_status"] == "SUCCESS", match
    data = match["results_data"]
    assert data["min_confidence"] == data["max_confidence"]
    assert data["min_confidence"] >= match["technical_meta_data"]["threshold"]
    differ = finished(client, oz, started["other"])
    assert differ["state"] == "FINISHED" and differ["resolution_status"] == "DECLINED", differ
    assert differ["results_data"]["min_confidence"] < differ["technical_meta_data"]["threshold"]
    failed = finished(client, oz, started["faceless"])
    assert failed["state"] == "FAILED" and failed["resolution_status"] == "FAILED"
    assert failed["error_code"] == 4 and failed["error_message"] and failed["results_data"] is None
    folder = client.get(f"{OZ}/folders/{same['folder_id']}/", headers=oz).json()
    assert folder["resolution_status"] == "SUCCESS"
    assert [a["analyse_id"] for a in folder["analyses"]] == [started["same"]]


def test_collection_declines_a_blacklisted_face(
    client: TestClient, oz: dict[str, str], testdata: Path
) -> None:
    cid = client.post("/v1/collections", json={"name": "oz watch", "kind": "blacklist"}).json()[
        "id"
    ]
    sid = client.post(f"/v1/collections/{cid}/subjects", json={"name": "elon"}).json()["id"]
    enrolled = client.post(
        f"/v1/collections/{cid}/subjects/{sid}/faces",
        files={"image": ("e.jpg", photo(testdata, "img18.jpg"))},
    )
    assert enrolled.status_code == 201, enrolled.text
    tags = {"selfie": ["photo_selfie"], "id": ["photo_id_front"]}
    media = {"selfie": photo(testdata, "img19.jpg"), "id": photo(testdata, "img1.jpg")}
    wanted = new_folder(client, oz, media, tags)
    clean = new_folder(client, oz, {"selfie": photo(testdata, "img1.jpg")}, {})
    [hit] = analyse(client, oz, wanted["folder_id"], {"type": "COLLECTION"}).json()
    [miss] = analyse(client, oz, clean["folder_id"], {"type": "collection"}).json()
    # With several media and no source_media, COLLECTION checks the photo_selfie.
    assert [m["tags"] for m in hit["source_media"]] == [["photo_selfie"]]
    hit = finished(client, oz, hit["analyse_id"])
    assert hit["type"] == "COLLECTION" and hit["resolution_status"] == "DECLINED", hit
    person = hit["results_data"]["persons"][0]
    assert person["person_id"] == sid and person["collection_id"] == cid
    assert hit["results_data"]["max_confidence"] == person["confidence"]
    miss = finished(client, oz, miss["analyse_id"])
    assert miss["state"] == "FINISHED" and miss["resolution_status"] == "SUCCESS", miss
    assert miss["results_data"] == {"max_confidence": None, "persons": []}


def test_analysis_requests_are_checked_before_anything_runs(
    client: TestClient, oz: dict[str, str], testdata: Path
) -> None:
    folder = new_folder(client, oz, {"photo1": photo(testdata, "img1.jpg")}, {})
    fid = folder["folder_id"]
    body = oz_error(analyse(client, oz, fid, {"type": "QUALITY"}), 501, 2)
    assert body["details"]["type"] == "QUALITY"
    oz_error(analyse(client, oz, fid, {"type": "biometry"}, {"type": "quality"}), 501, 2)
    oz_error(analyse(client, oz, fid, {"type": "biometry"}), 400, 4)  # one photo only
    oz_error(analyse(client, oz, fid, {"type": "palmistry"}), 400, 4)
    oz_error(analyse(client, oz, fid, {"type": 3}), 400, 5)
    oz_error(analyse(client, oz, fid, {"kind": "biometry"}), 400, 3)
    missing = {"type": "collection", "source_media": [str(uuid.uuid4())]}
    oz_error(analyse(client, oz, fid, missing), 404, 10)
    oz_error(analyse(client, oz, fid, {"type": "collection", "source_media": ["x"]}), 400, 4)
    url = f"{OZ}/folders/{fid}/analyses/"
    oz_error(client.post(url, headers=oz, json={}), 400, 3)
    oz_error(client.post(url, headers=oz, json={"analyses": "biometry"}), 400, 5)
    assert client.get(f"{OZ}/folders/{fid}/", headers=oz).json()["analyses"] == []


def test_unsupported_routes_are_not_realized(client: TestClient, oz: dict[str, str]) -> None:
    some = uuid.uuid4().hex
    for method, path in (
        ("GET", "/folders/"),
        ("DELETE", f"/folders/{some}/"),
        ("POST", f"/folders/{some}/media/"),
        ("PATCH", f"/media/{some}/"),
        ("GET", "/analyses/"),
        ("POST", "/instant/folders/"),
    ):
        oz_error(client.request(method, OZ + path, headers=oz), 501, 2)
    oz_error(client.put(f"{OZ}/folders/{some}/", headers=oz), 405, 1)
    oz_error(client.get(f"{OZ}/no/such/route/", headers=oz), 404, 10)


def container(
    token: str,
    media: dict[str, bytes],
    tags: dict[str, list[str]] | None = None,
    signature: str | None = None,
    hashes: dict[str, str] | None = None,
    with_payload: bool = True,
) -> bytes:
    """A data container: payload.json, its HMAC-SHA256 `signature` keyed by the session token."""
    digests = {n: hashlib.sha256(d).hexdigest() for n, d in media.items()}
    payload = {"session_token": token, "media:tags": tags or {}, "media:sha256": hashes or digests}
    raw = json.dumps(payload).encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        if with_payload:
            zf.writestr("payload.json", raw)
            zf.writestr(
                "signature", signature or hmac.new(token.encode(), raw, "sha256").hexdigest()
            )
        for name, data in media.items():
            zf.writestr(name, data)
    return buf.getvalue()


def post_container(
    client: TestClient, oz: dict[str, str], data: bytes, path: str = "/folders/"
) -> Any:
    headers = {**oz, "Content-Type": "application/octet-stream"}
    return client.post(OZ + path, headers=headers, content=data)


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


def test_another_company_sees_nothing(
    client: TestClient, oz: dict[str, str], testdata: Path
) -> None:
    folder = new_folder(client, oz, {"selfie": photo(testdata, "img1.jpg")}, {})
    fid = folder["folder_id"]
    [mine] = analyse(client, oz, fid, {"type": "collection"}).json()
    rival = as_token(
        login(client, new_user(client, "oz@rival.test", company="oz-rival"))["access_token"]
    )
    oz_error(client.get(f"{OZ}/folders/{fid}/", headers=rival), 404, 10)
    oz_error(client.get(f"{OZ}/analyses/{mine['analyse_id']}/", headers=rival), 404, 10)
    oz_error(analyse(client, rival, fid, {"type": "collection"}), 404, 10)
    # A container signed with this company's session token is refused to another company.
    token = client.get(f"{OZ}/authorize/session_token/", headers=oz).json()["session_token"]
    media = {"a.jpg": photo(testdata, "img1.jpg")}
    oz_error(post_container(client, rival, container(token, media)), 400, 14)
    # A native task is no Oz analysis, even for its own company.
    junk = {"base64": "bm90IGFuIGltYWdl"}
    task = client.post("/v1/tasks", json={"operation": "detect", "input": {"image": junk}})
    oz_error(client.get(f"{OZ}/analyses/{task.json()['request_id']}/", headers=oz), 404, 10)
