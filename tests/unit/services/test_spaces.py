"""Embedding spaces across server settings: an old dlib_resnet_v1 collection keeps working on a
fused server; a fused collection on a server that cannot make it says why."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from faceplane.engine.embed import project
from faceplane.engine.models.registry import DLIB_SPACE, FUSED_SPACE
from faceplane.errors import Err, FaceplaneError
from faceplane.runtime import Runtime
from faceplane.services import collections as col
from faceplane.services.enroll import enroll_faces
from faceplane.services.faces import DetectRequest, detect_faces
from faceplane.services.images import ImageSource
from faceplane.services.search import check_blacklists, search_collection
from faceplane.settings import Settings
from faceplane.store.db import faces

CO = "company-spaces"
JOHNS = "faces/dlib/examples/johns"


def image(path: Path) -> ImageSource:
    return ImageSource("image", data=path.read_bytes())


def people(testdata: Path) -> list[Path]:
    return sorted(p for p in (testdata / JOHNS).iterdir() if p.is_dir())


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("spaces")


@pytest.fixture(scope="module")
def fused(data_dir: Path) -> Runtime:
    rt = Runtime.open(Settings(data_dir=data_dir, embedder="auto"))
    if rt.pool.embedding_space() != FUSED_SPACE:
        pytest.skip("MobileFaceNet is not installed: no fused server to test")
    return rt


@pytest.fixture(scope="module")
def old(data_dir: Path, fused: Runtime, testdata: Path) -> dict[str, Any]:
    """A gallery made and filled by yesterday's server (dlib's ResNet alone)."""
    rt = Runtime.open(Settings(data_dir=data_dir, embedder="onnx"))
    assert rt.pool.embedding_space() == DLIB_SPACE
    made = col.create_collection(rt, CO, "old johns", "gallery")
    assert made["model"] == DLIB_SPACE
    subjects, probes = {}, {}
    for person in people(testdata):
        sid = col.create_subject(rt, CO, made["id"], person.name)["id"]
        photos = sorted(person.glob("*.jpg"))
        for photo in photos[:3]:
            enroll_faces(rt, CO, made["id"], sid, image(photo))
        subjects[person.name], probes[person.name] = sid, photos[-1]
    return {"id": made["id"], "subjects": subjects, "probes": probes, "rt": rt}


def test_an_old_collection_still_finds_its_faces_on_a_fused_server(
    fused: Runtime, old: dict[str, Any]
) -> None:
    for name, probe in old["probes"].items():
        out = search_collection(fused, CO, old["id"], image=image(probe), far=1e-3)
        assert out["faces"][0]["matches"][0]["subject_id"] == old["subjects"][name], name
    # The same answer as yesterday's server gives, on the same scale.
    name, probe = next(iter(old["probes"].items()))
    before = search_collection(old["rt"], CO, old["id"], image=image(probe), far=1e-3)
    after = search_collection(fused, CO, old["id"], image=image(probe), far=1e-3)
    assert after["faces"][0]["threshold"] == before["faces"][0]["threshold"]
    b, a = before["faces"][0]["matches"][0], after["faces"][0]["matches"][0]
    assert a["face_token"] == b["face_token"]
    assert a["similarity"] == pytest.approx(b["similarity"], abs=1e-4)


def test_an_old_collection_takes_128_or_320_values_and_its_tokens(
    fused: Runtime, old: dict[str, Any], testdata: Path
) -> None:
    name, probe = next(iter(old["probes"].items()))
    req = DetectRequest(return_embedding=True)
    vec = detect_faces(fused, image(probe), req)["faces"][0]["embedding"]
    assert len(vec) == 320
    dlib_part = project(np.asarray([vec], np.float32), FUSED_SPACE, DLIB_SPACE)[0]
    for probe_vec in (vec, dlib_part.tolist()):
        out = search_collection(fused, CO, old["id"], embedding=probe_vec, k=1, far=1e-3)
        assert out["faces"][0]["matches"][0]["subject_id"] == old["subjects"][name]
    sid = old["subjects"][name]
    token = col.list_faces(fused, CO, old["id"], sid, 1, None)["faces"][0]["face_token"]
    by_token = search_collection(fused, CO, old["id"], face_token=token, k=1)
    assert by_token["faces"][0]["matches"][0]["face_token"] == token
    with pytest.raises(FaceplaneError) as exc:
        search_collection(fused, CO, old["id"], embedding=[0.1] * 192)
    assert exc.value.err is Err.EMBEDDING_INVALID and exc.value.details["lengths"] == [128, 320]


def test_enrolling_into_an_old_collection_stores_the_dlib_part(
    fused: Runtime, old: dict[str, Any], testdata: Path
) -> None:
    person = people(testdata)[1]
    sid = old["subjects"][person.name]
    photo = sorted(person.glob("*.jpg"))[4]
    token = enroll_faces(fused, CO, old["id"], sid, image(photo))["face_token"]
    with fused.store.db.connect() as conn:
        row = conn.execute(faces.select().where(faces.c.token == token)).mappings().one()
    assert row["model"] == DLIB_SPACE and len(row["embedding"]) == 128 * 4
    again = search_collection(fused, CO, old["id"], image=image(photo), k=1)
    assert again["faces"][0]["matches"][0]["face_token"] == token


def test_new_collections_are_fused_and_blacklists_mix_spaces(
    fused: Runtime, old: dict[str, Any], testdata: Path
) -> None:
    new = col.create_collection(fused, CO, "new list", "blacklist")
    assert new["model"] == FUSED_SPACE
    person = people(testdata)[3]
    sid = col.create_subject(fused, CO, new["id"], person.name)["id"]
    photos = sorted(person.glob("*.jpg"))
    enroll_faces(fused, CO, new["id"], sid, image(photos[0]))
    assert fused.store.indexes.get(fused.store.db, new["id"]).dim == 320
    oldlist = col.create_collection(old["rt"], CO, "old list", "blacklist")
    assert oldlist["model"] == DLIB_SPACE
    sid_old = col.create_subject(old["rt"], CO, oldlist["id"], person.name)["id"]
    enroll_faces(old["rt"], CO, oldlist["id"], sid_old, image(photos[1]))
    hit = check_blacklists(fused, CO, image(photos[-1]), far=1e-3)
    assert hit["hit"] and {m["collection_name"] for m in hit["matches"]} == {
        "new list",
        "old list",
    }
    # Yesterday's server cannot make the fused space: the new list is no silent miss there.
    with pytest.raises(FaceplaneError) as exc:
        check_blacklists(old["rt"], CO, image(photos[-1]))
    assert exc.value.err is Err.EMBEDDING_MODEL_MISMATCH
    assert exc.value.details["collection_model"] == FUSED_SPACE


def test_a_fused_collection_without_mobilefacenet_is_model_unavailable(
    fused: Runtime, data_dir: Path, tmp_path: Path, testdata: Path
) -> None:
    cid = col.create_collection(fused, CO, "fused gallery", "gallery")["id"]
    # A server whose model folder lacks MobileFaceNet (npm was missing at install).
    models = tmp_path / "models"
    models.mkdir()
    for f in fused.settings.models_dir.iterdir():
        if f.name != "MobileFaceNet.tflite":
            (models / f.name).symlink_to(f)
    bare = Runtime.open(Settings(data_dir=data_dir, models_dir=models))
    assert bare.pool.embedding_space() == DLIB_SPACE
    photo = sorted(people(testdata)[0].glob("*.jpg"))[0]
    with pytest.raises(FaceplaneError) as exc:
        search_collection(bare, CO, cid, image=image(photo))
    assert exc.value.err is Err.MODEL_UNAVAILABLE
    assert exc.value.details["model"] == "mobilefacenet"
    assert exc.value.details["collection_model"] == FUSED_SPACE
