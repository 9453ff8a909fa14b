"""Oz analyses (seed 004's biometry, blacklist collections, statuses) on real photos: BIOMETRY
and COLLECTION verdicts, how the media are chosen, and errors in Oz's terms."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from oz_client import (
    ANALYSIS_KEYS,
    OZ,
    analyse,
    blank_png,
    finished,
    new_folder,
    oz_app,
    oz_error,
    oz_user,
    photo,
)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with oz_app(tmp_path_factory) as c:
        yield c


@pytest.fixture(scope="module")
def oz(client: TestClient) -> dict[str, str]:
    return oz_user(client, "oz.analyses@example.com")


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
    measures = match["technical_meta_data"]
    assert (measures["threshold"], measures["threshold_far"]) == (0.7, 1e-4)
    assert 0 < measures["far"] < measures["threshold_far"]
    differ = finished(client, oz, started["other"])
    assert differ["state"] == "FINISHED" and differ["resolution_status"] == "DECLINED", differ
    assert differ["results_data"]["min_confidence"] < differ["technical_meta_data"]["threshold"]
    failed = finished(client, oz, started["faceless"])
    assert failed["state"] == "FAILED" and failed["resolution_status"] == "FAILED"
    assert failed["error_code"] == 4 and failed["error_message"] and failed["results_data"] is None
    folder = client.get(f"{OZ}/folders/{same['folder_id']}/", headers=oz).json()
    assert folder["resolution_status"] == "SUCCESS"
    assert [a["analyse_id"] for a in folder["analyses"]] == [started["same"]]
    assert folder["time_updated"] >= folder["analyses"][0]["time_updated"]


def test_a_failed_analysis_names_the_media_the_client_sent_not_image2(
    client: TestClient, oz: dict[str, str], testdata: Path
) -> None:
    folder = new_folder(client, oz, {"id": photo(testdata, "img1.jpg"), "blank": blank_png()}, {})
    face, blank = (m["media_id"] for m in folder["media"])
    [a] = analyse(client, oz, folder["folder_id"], {"type": "biometry"}).json()
    failed = finished(client, oz, a["analyse_id"])
    assert failed["state"] == "FAILED" and failed["error_code"] == 4, failed
    message = failed["error_message"]
    assert blank in message and face not in message, message
    assert "image1" not in message and "image2" not in message, message


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


def test_an_empty_source_media_list_chooses_by_tag_like_no_list(
    client: TestClient, oz: dict[str, str], testdata: Path
) -> None:
    tags = {"selfie": ["photo_selfie"], "id": ["photo_id_front"]}
    media = {"id": photo(testdata, "img1.jpg"), "selfie": photo(testdata, "img2.jpg")}
    folder = new_folder(client, oz, media, tags)
    fid = folder["folder_id"]
    selfie = next(m["media_id"] for m in folder["media"] if m["tags"] == ["photo_selfie"])
    for item in ({"type": "collection"}, {"type": "collection", "source_media": []}):
        resp = analyse(client, oz, fid, item)
        assert resp.status_code == 201, resp.text
        assert [m["media_id"] for m in resp.json()[0]["source_media"]] == [selfie]
    resp = analyse(client, oz, fid, {"type": "biometry", "source_media": []})
    assert resp.status_code == 201, resp.text
    assert len(resp.json()[0]["source_media"]) == 2
    unknown = str(uuid.uuid4())
    listed = {"type": "collection", "source_media": [unknown]}
    body = oz_error(analyse(client, oz, fid, listed), 404, 10)
    assert body["details"]["media"] == [uuid.UUID(unknown).hex]


def test_analysis_requests_are_checked_before_anything_runs(
    client: TestClient, oz: dict[str, str], testdata: Path
) -> None:
    folder = new_folder(client, oz, {"photo1": photo(testdata, "img1.jpg")}, {})
    fid = folder["folder_id"]
    body = oz_error(analyse(client, oz, fid, {"type": "QUALITY"}), 501, 2)
    assert body["details"]["type"] == "QUALITY"
    oz_error(analyse(client, oz, fid, {"type": "biometry"}, {"type": "quality"}), 501, 2)
    body = oz_error(analyse(client, oz, fid, {"type": "biometry"}), 400, 4)  # one photo only
    assert "folder" in body["error_message"] or "two photos" in body["error_message"]
    assert body["details"]["item"] == 0
    body = oz_error(analyse(client, oz, fid, {"type": "palmistry"}), 400, 4)
    assert body["details"]["field"] == "analyses[0].type"
    oz_error(analyse(client, oz, fid, {"type": 3}), 400, 5)
    oz_error(analyse(client, oz, fid, {"kind": "biometry"}), 400, 3)
    missing = {"type": "collection", "source_media": [str(uuid.uuid4())]}
    oz_error(analyse(client, oz, fid, {"type": "collection"}, missing), 404, 10)
    bad_id = {"type": "collection", "source_media": ["x"]}
    body = oz_error(analyse(client, oz, fid, bad_id), 400, 4)
    assert body["details"]["field"] == "analyses[0].source_media"
    url = f"{OZ}/folders/{fid}/analyses/"
    oz_error(client.post(url, headers=oz, json={}), 400, 3)
    oz_error(client.post(url, headers=oz, json={"analyses": "biometry"}), 400, 5)
    assert client.get(f"{OZ}/folders/{fid}/", headers=oz).json()["analyses"] == []
