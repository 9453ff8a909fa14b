"""Oz folders (seed 004's folders, media and media tags) on the analysis sessions service: their
shape, their rows in the session tables, deletion, blob-kept folders of earlier versions, and
tenant isolation."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from faceplane.store.db import analysis_sessions, session_analyses, session_media, tasks
from oz_client import (
    FOLDER_KEYS,
    HEX,
    MEDIA_KEYS,
    OZ,
    analyse,
    finished,
    new_folder,
    oz_app,
    oz_error,
    oz_user,
    photo,
    store_of,
)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with oz_app(tmp_path_factory) as c:
        yield c


@pytest.fixture(scope="module")
def oz(client: TestClient) -> dict[str, str]:
    return oz_user(client, "oz.folders@example.com")


def rows(client: TestClient, table: Any, **where: str) -> list[dict[str, Any]]:
    query = select(table).where(*(table.c[k] == v for k, v in where.items()))
    with store_of(client).db.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def blob_files(client: TestClient) -> list[Path]:
    return [p for p in store_of(client).blobs.root.rglob("*") if p.is_file()]


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
        assert media["technical_meta_data"]["sha256"] == hashlib.sha256(data).hexdigest()
        url = urlsplit(media["original_url"])
        assert client.get(f"{url.path}?{url.query}").content == data
    dashed = str(uuid.UUID(folder["folder_id"]))
    again = client.get(f"{OZ}/folders/{dashed}", headers=oz).json()
    assert [m["media_id"] for m in again["media"]] == [m["media_id"] for m in folder["media"]]
    oz_error(client.get(f"{OZ}/folders/not-a-uuid/", headers=oz), 400, 4)
    oz_error(client.get(f"{OZ}/folders/{uuid.uuid4()}/", headers=oz), 404, 10)
    junk = {"photo1": ("a.jpg", b"not an image", "image/jpeg")}
    body = oz_error(client.post(f"{OZ}/folders/", headers=oz, files=junk), 415, 4)
    assert body["details"]["media"] == "photo1"
    no_media = {"payload": (None, "{}")}  # multipart with a payload field and no file
    body = oz_error(client.post(f"{OZ}/folders/", headers=oz, files=no_media), 400, 3)
    assert "folder" in body["error_message"]
    stray = {"payload": json.dumps({"media:tags": {"photo9": ["photo_selfie"]}})}
    files = {"photo1": ("a.jpg", img1, "image/jpeg")}
    body = oz_error(client.post(f"{OZ}/folders/", headers=oz, files=files, data=stray), 400, 4)
    assert body["details"] == {"field": "media:tags", "media": ["photo9"]}
    bad_tag = {"payload": json.dumps({"media:tags": {"photo1": ["no spaces"]}})}
    body = oz_error(client.post(f"{OZ}/folders/", headers=oz, files=files, data=bad_tag), 400, 4)
    assert body["details"] == {"field": "media:tags.photo1"}
    oz_error(client.post(f"{OZ}/folders/", headers=oz, json={"media": []}), 400, 4)


def test_a_folder_lives_in_the_session_tables_not_in_a_json_blob(
    client: TestClient, oz: dict[str, str], testdata: Path
) -> None:
    tags = {"selfie": ["photo_selfie"]}
    folder = new_folder(client, oz, {"selfie": photo(testdata, "img1.jpg")}, tags)
    fid = folder["folder_id"]
    [session] = rows(client, analysis_sessions, id=fid)
    assert session["company_id"] == folder["company_id"]
    assert json.loads(session["metadata_json"]) == {"case": "t-1"}
    [media] = rows(client, session_media, session_id=fid)
    assert media["id"] == folder["media"][0]["media_id"] and media["kind"] == "photo"
    assert json.loads(media["tags_json"]) == ["photo_selfie"]
    assert media["blob_key"].startswith(f"sessions/{fid}/media/")
    [started] = analyse(client, oz, fid, {"type": "collection"}).json()
    [analysis] = rows(client, session_analyses, session_id=fid)
    assert analysis["id"] == analysis["task_id"] == started["analyse_id"]
    assert analysis["type"] == "COLLECTION"
    assert json.loads(analysis["inputs_json"]) == {"image": media["id"]}
    names = {p.name for p in blob_files(client)}
    assert "folder.json" not in names and not (store_of(client).blobs.root / "oz").exists()


def test_deleting_a_folder_deletes_its_media_rows_and_analysis_inputs(
    client: TestClient, oz: dict[str, str], testdata: Path
) -> None:
    media = {"id": photo(testdata, "img1.jpg"), "selfie": photo(testdata, "img2.jpg")}
    folder = new_folder(client, oz, media, {})
    fid = folder["folder_id"]
    [started] = analyse(client, oz, fid, {"type": "biometry"}).json()
    aid = started["analyse_id"]
    assert finished(client, oz, aid)["resolution_status"] == "SUCCESS"
    root = store_of(client).blobs.root
    assert (root / "sessions" / fid).is_dir() and (root / "tasks" / aid).is_dir()
    resp = client.delete(f"{OZ}/folders/{fid}/", headers=oz)
    assert resp.status_code == 204 and resp.content == b""
    assert not (root / "sessions" / fid).exists() and not (root / "tasks" / aid).exists()
    for table in (analysis_sessions, session_media, session_analyses):
        key = "id" if table is analysis_sessions else "session_id"
        assert rows(client, table, **{key: fid}) == []
    [task] = rows(client, tasks, id=aid)
    assert task["purged"] and task["result_json"] is None and task["input_json"] == "{}"
    oz_error(client.get(f"{OZ}/folders/{fid}/", headers=oz), 404, 10)
    oz_error(client.get(f"{OZ}/analyses/{aid}/", headers=oz), 404, 10)
    oz_error(client.delete(f"{OZ}/folders/{fid}/", headers=oz), 404, 10)


def test_a_folder_kept_as_a_blob_by_an_earlier_version_moves_into_the_tables(
    client: TestClient, oz: dict[str, str], testdata: Path
) -> None:
    made = new_folder(client, oz, {"a": photo(testdata, "img1.jpg")}, {})
    company_id, fid, mid = made["company_id"], uuid.uuid4().hex, uuid.uuid4().hex
    blobs = store_of(client).blobs
    # What the blob-kept version wrote: the photo, folder.json, and an analysis record.
    data = photo(testdata, "img2.jpg")
    key = blobs.put(f"oz/{fid}/media/{mid}.jpeg", data)
    legacy = {
        "folder_id": fid,
        "company_id": company_id,
        "creator": "user:old",
        "time_created": 1_700_000_000.0,
        "meta_data": {"case": "old"},
        "media": [
            {"media_id": mid, "original_name": "b.jpg", "tags": ["photo_selfie"], "blob": key}
        ],
    }
    blobs.put(f"oz/{fid}/folder.json", json.dumps(legacy).encode())
    rival = oz_user(client, "oz@rival-legacy.test", company="oz-rival-legacy")
    oz_error(client.get(f"{OZ}/folders/{fid}/", headers=rival), 404, 10)
    assert rows(client, analysis_sessions, id=fid) == []
    folder = client.get(f"{OZ}/folders/{fid}/", headers=oz).json()
    assert folder["meta_data"] == {"case": "old"} and folder["time_created"] == 1_700_000_000.0
    [media] = folder["media"]
    assert media["media_id"] == mid and media["tags"] == ["photo_selfie"]
    assert media["technical_meta_data"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert (
        rows(client, analysis_sessions, id=fid)
        and not (blobs.root / f"oz/{fid}/folder.json").exists()
    )
    [started] = analyse(client, oz, fid, {"type": "collection"}).json()
    assert [m["media_id"] for m in started["source_media"]] == [mid]
    assert client.delete(f"{OZ}/folders/{fid}/", headers=oz).status_code == 204
    assert not (blobs.root / "oz" / fid).exists()


def test_another_company_gets_the_same_not_found_as_for_a_missing_folder(
    client: TestClient, oz: dict[str, str], testdata: Path
) -> None:
    folder = new_folder(client, oz, {"selfie": photo(testdata, "img1.jpg")}, {})
    fid = folder["folder_id"]
    [mine] = analyse(client, oz, fid, {"type": "collection"}).json()
    rival = oz_user(client, "oz@rival.test", company="oz-rival")
    foreign = oz_error(client.get(f"{OZ}/folders/{fid}/", headers=rival), 404, 10)
    other = uuid.uuid4().hex
    missing = oz_error(client.get(f"{OZ}/folders/{other}/", headers=rival), 404, 10)
    assert foreign["error_message"] == missing["error_message"]
    assert foreign["details"] == {"folder_id": fid} and missing["details"] == {"folder_id": other}
    oz_error(client.get(f"{OZ}/analyses/{mine['analyse_id']}/", headers=rival), 404, 10)
    oz_error(analyse(client, rival, fid, {"type": "collection"}), 404, 10)
    oz_error(client.delete(f"{OZ}/folders/{fid}/", headers=rival), 404, 10)
    # Nothing of the rival's attempts touched the folder.
    again = client.get(f"{OZ}/folders/{fid}/", headers=oz).json()
    assert [a["analyse_id"] for a in again["analyses"]] == [mine["analyse_id"]]
    with store_of(client).db.connect() as conn:
        count = conn.execute(
            select(func.count())
            .select_from(session_analyses)
            .where(session_analyses.c.session_id == fid)
        ).scalar_one()
    assert count == 1
    # A native task is no Oz analysis, even for its own company.
    junk = {"base64": "bm90IGFuIGltYWdl"}
    task = client.post("/v1/tasks", json={"operation": "detect", "input": {"image": junk}})
    oz_error(client.get(f"{OZ}/analyses/{task.json()['request_id']}/", headers=oz), 404, 10)
