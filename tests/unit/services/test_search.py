"""services.search, called directly: 1:N identification on real photos, thresholds, blacklists."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from faceplane.errors import Err, FaceplaneError
from faceplane.runtime import Runtime
from faceplane.services import collections as col
from faceplane.services.enroll import enroll_faces
from faceplane.services.images import ImageSource
from faceplane.services.search import check_blacklists, far_threshold, search_collection
from faceplane.settings import Settings
from faceplane.store.db import collections

CO = "company-search"
JOHNS = "faces/dlib/examples/johns"


@pytest.fixture(scope="module")
def rt(tmp_path_factory: pytest.TempPathFactory) -> Runtime:
    return Runtime.open(Settings(data_dir=tmp_path_factory.mktemp("search")))


def people(testdata: Path) -> list[Path]:
    return sorted(p for p in (testdata / JOHNS).iterdir() if p.is_dir())


def image(path: Path) -> ImageSource:
    return ImageSource("image", data=path.read_bytes())


@pytest.fixture(scope="module")
def johns(rt: Runtime, testdata: Path) -> dict[str, Any]:
    """A gallery of the five Johns, three photos each; their last photos are the probes."""
    cid = col.create_collection(rt, CO, "johns", "gallery")["id"]
    subjects, probes = {}, {}
    for person in people(testdata):
        sid = col.create_subject(rt, CO, cid, person.name)["id"]
        photos = sorted(person.glob("*.jpg"))
        for photo in photos[:3]:
            enroll_faces(rt, CO, cid, sid, image(photo))
        subjects[person.name], probes[person.name] = sid, photos[-1]
    return {"id": cid, "subjects": subjects, "probes": probes}


def test_each_john_is_found_first_above_the_threshold(rt: Runtime, johns: dict[str, Any]) -> None:
    for name, probe in johns["probes"].items():
        out = search_collection(rt, CO, johns["id"], image=image(probe), far=1e-3)
        [face] = out["faces"]
        assert face["matches"][0]["subject_id"] == johns["subjects"][name], (name, face)
        assert face["matches"][0]["similarity"] >= face["threshold"]
        assert len({m["subject_id"] for m in face["matches"]}) == len(face["matches"])
        # Every match says the FAR of its score, within the FAR the threshold was asked at.
        assert face["threshold"] == pytest.approx(0.6) and out["far"] == 1e-3
        assert all(0 < m["far"] <= 1e-3 * 1.001 for m in face["matches"])


def test_a_stranger_matches_nobody(rt: Runtime, johns: dict[str, Any], astronaut: bytes) -> None:
    out = search_collection(rt, CO, johns["id"], image=ImageSource("image", data=astronaut))
    assert out["faces"][0]["matches"] == [] and out["far"] == 1e-4


def test_a_stored_face_and_its_embedding_find_their_subject(
    rt: Runtime, johns: dict[str, Any], testdata: Path
) -> None:
    name = people(testdata)[2].name
    sid = johns["subjects"][name]
    token = col.list_faces(rt, CO, johns["id"], sid, 1, None)["faces"][0]["face_token"]
    by_token = search_collection(rt, CO, johns["id"], face_token=token, k=1)
    assert by_token["faces"][0]["matches"][0]["face_token"] == token
    assert by_token["faces"][0]["box"] is None


def test_probe_arguments_are_checked(rt: Runtime, johns: dict[str, Any]) -> None:
    with pytest.raises(FaceplaneError) as exc:
        search_collection(rt, CO, johns["id"])
    assert exc.value.err is Err.INVALID_ARGUMENT
    for bad in ([0.0] * 128, [1.0] * 127, [float("nan")] * 128):
        with pytest.raises(FaceplaneError) as exc:
            search_collection(rt, CO, johns["id"], embedding=bad)
        assert exc.value.err is Err.EMBEDDING_INVALID
    with pytest.raises(FaceplaneError) as exc:
        search_collection(rt, "another company", johns["id"], embedding=[1.0] * 128)
    assert exc.value.err is Err.COLLECTION_NOT_FOUND


def test_stricter_far_means_a_higher_threshold_and_too_strict_is_refused(rt: Runtime) -> None:
    thresholds = [far_threshold(rt, far)[0] for far in (1e-3, 1e-4, 1e-5, 1e-6)]
    # The scale compare speaks too: one tenth of similarity per decade of FAR.
    assert thresholds == pytest.approx([0.6, 0.7, 0.8, 0.9])
    # A FAR between two knots is interpolated on the same rule, not rounded to a row.
    assert far_threshold(rt, 5e-4) == (pytest.approx(0.3 + 0.1 * 3.30103, abs=1e-6), 5e-4)
    with pytest.raises(FaceplaneError) as exc:
        far_threshold(rt, 1e-9)
    assert exc.value.err is Err.INVALID_ARGUMENT


def test_blacklists_are_checked_every_one_and_only_the_callers(
    rt: Runtime, testdata: Path, astronaut: bytes
) -> None:
    person = people(testdata)[4]
    photos = sorted(person.glob("*.jpg"))
    company = "company-watch"
    for name in ("first list", "second list"):
        cid = col.create_collection(rt, company, name, "blacklist")["id"]
        sid = col.create_subject(rt, company, cid, person.name)["id"]
        enroll_faces(rt, company, cid, sid, image(photos[0]))
    hit = check_blacklists(rt, company, image(photos[-1]))
    assert hit["hit"] and hit["blacklists"] == 2
    assert {m["collection_name"] for m in hit["matches"]} == {"first list", "second list"}
    # The default FAR (1e-4) on the one scale, and each entry's own FAR below it.
    assert hit["threshold"] == pytest.approx(0.7) and hit["far"] == 1e-4
    assert all(0 < m["far"] <= 1e-4 * 1.001 for m in hit["matches"])
    assert not check_blacklists(rt, company, ImageSource("image", data=astronaut))["hit"]
    # Another company has no blacklists: the same face is no hit there.
    elsewhere = check_blacklists(rt, "company-clean", image(photos[-1]))
    assert elsewhere == {**elsewhere, "hit": False, "blacklists": 0}


def test_a_collection_of_another_embedding_space_refuses_search(rt: Runtime) -> None:
    cid = col.create_collection(rt, "company-old", "old", "blacklist")["id"]
    with rt.store.db.begin() as conn:
        conn.execute(update(collections).where(collections.c.id == cid).values(model="other_v1"))
    for call in (
        lambda: search_collection(rt, "company-old", cid, embedding=[1.0] * 128),
        lambda: check_blacklists(rt, "company-old", None, embedding=[1.0] * 128),
    ):
        with pytest.raises(FaceplaneError) as exc:
            call()
        assert exc.value.err is Err.EMBEDDING_MODEL_MISMATCH
        assert exc.value.details["collection_id"] == cid
