"""services.enroll, called directly on a runtime: the quality gate, the limits, the stored face."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image, ImageFilter
from sqlalchemy import func, select, update

from faceplane.errors import Err, FaceplaneError
from faceplane.runtime import Runtime
from faceplane.services import collections as col
from faceplane.services.enroll import enroll_faces
from faceplane.services.faces import DetectRequest, detect_faces
from faceplane.services.images import ImageSource
from faceplane.settings import Settings
from faceplane.store.db import collections, faces

CO = "company-enroll"
JOHNS = "faces/dlib/examples/johns"
GROUP = "faces/insightface/t1.jpg"
NO_FACE = "faces/dlib/examples/faces/dogs.jpg"
PORTRAIT = "faces/deepface/images/img1.jpg"


@pytest.fixture(scope="module")
def rt(tmp_path_factory: pytest.TempPathFactory) -> Runtime:
    """A runtime whose subjects hold at most 2 faces and collections 4."""
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("enroll"),
        subject_max_faces=2,
        collection_max_faces=4,
        quality_min_inter_eye_px=16,
    )
    return Runtime.open(settings)


def gallery(rt: Runtime, name: str) -> tuple[str, str]:
    """A new collection with one subject: (collection id, subject id)."""
    cid = col.create_collection(rt, CO, name, "gallery")["id"]
    return cid, col.create_subject(rt, CO, cid, "someone")["id"]


def image(path: Path) -> ImageSource:
    return ImageSource("image", data=path.read_bytes())


def johns(testdata: Path) -> list[Path]:
    person = sorted(p for p in (testdata / JOHNS).iterdir() if p.is_dir())[0]
    return sorted(person.glob("*.jpg"))


def stored(rt: Runtime, **where: str) -> int:
    query = select(func.count()).select_from(faces)
    for column, value in where.items():
        query = query.where(faces.c[column] == value)
    with rt.store.db.connect() as conn:
        return int(conn.execute(query).scalar_one())


def code(exc: pytest.ExceptionInfo[FaceplaneError]) -> Err:
    return exc.value.err


def test_the_largest_face_is_stored_searchable_with_its_model(rt: Runtime, testdata: Path) -> None:
    cid, sid = gallery(rt, "largest")
    out = enroll_faces(rt, CO, cid, sid, image(johns(testdata)[0]))
    assert [f["face_index"] for f in out["faces"]] == [0] and out["unindexed"] == []
    assert out["embedder"] == rt.pool.embedder_name()
    face = col.get_face(rt, CO, cid, out["face_token"])
    assert face["subject_id"] == sid and face["quality"]["issues"] == [] and not face["has_crop"]
    assert len(rt.store.indexes.get(rt.store.db, cid)) == 1


def test_keep_crop_stores_a_crop_and_never_the_photo(rt: Runtime, testdata: Path) -> None:
    cid, sid = gallery(rt, "crops")
    photo = testdata / PORTRAIT
    keeping = Runtime.open(rt.settings.model_copy(update={"enroll_keep_crops": True}))
    out = enroll_faces(keeping, CO, cid, sid, image(photo), keep_crop=True)
    assert col.get_face(rt, CO, cid, out["face_token"])["has_crop"]
    crops = list((rt.settings.data_dir / "blobs" / "collections" / cid).rglob("*.jpg"))
    assert len(crops) == 1
    crop = Image.open(crops[0])
    assert max(crop.size) <= 160 < min(Image.open(photo).size)  # a face crop, not the photo


def test_face_all_over_the_subject_limit_stores_nothing(rt: Runtime, testdata: Path) -> None:
    cid, sid = gallery(rt, "group")
    with pytest.raises(FaceplaneError) as exc:
        enroll_faces(rt, CO, cid, sid, image(testdata / GROUP), face="all")
    assert code(exc) is Err.FACE_LIMIT_EXCEEDED
    assert exc.value.details["scope"] == "subject" and exc.value.details["incoming"] > 2
    assert stored(rt, subject_id=sid) == 0


def test_face_all_lists_the_unfit_faces_and_enrolls_the_rest(rt: Runtime, testdata: Path) -> None:
    cid = col.create_collection(rt, CO, "group, roomy", "gallery")["id"]
    sid = col.create_subject(rt, CO, cid, "everyone")["id"]
    # A size bound between the group's smallest and largest faces makes some of them unfit.
    sizes = sorted(
        f["quality"]["inter_eye_px"]
        for f in detect_faces(rt, image(testdata / GROUP), DetectRequest())["faces"]
    )
    bound = (sizes[1] + sizes[2]) / 2
    limits = {
        "subject_max_faces": 10,
        "collection_max_faces": 10,
        "quality_min_inter_eye_px": bound,
    }
    roomy = Runtime.open(rt.settings.model_copy(update=limits))
    out = enroll_faces(roomy, CO, cid, sid, image(testdata / GROUP), face="all")
    small = [u for u in out["unindexed"] if "too_small" in {r["reason"] for r in u["reasons"]}]
    assert len(small) >= 2
    indexes = [f["face_index"] for f in out["faces"]] + [u["face_index"] for u in out["unindexed"]]
    assert sorted(indexes) == list(range(6))
    assert out["unindexed"] and all(u["reasons"] for u in out["unindexed"])
    assert stored(rt, subject_id=sid) == len(out["faces"]) >= 2


def test_the_collection_limit_counts_every_subject(rt: Runtime, testdata: Path) -> None:
    cid, first = gallery(rt, "full")
    second = col.create_subject(rt, CO, cid, "another")["id"]
    third = col.create_subject(rt, CO, cid, "a third")["id"]
    photos = johns(testdata)
    for subject, photo in zip((first, first, second, second), photos, strict=False):
        enroll_faces(rt, CO, cid, subject, image(photo))
    with pytest.raises(FaceplaneError) as exc:
        enroll_faces(rt, CO, cid, third, image(photos[5]))
    assert code(exc) is Err.FACE_LIMIT_EXCEEDED
    assert exc.value.details == {"scope": "collection", "limit": 4, "existing": 4, "incoming": 1}
    assert stored(rt, collection_id=cid) == 4


def test_one_unfit_face_is_refused_with_its_code_and_reasons(rt: Runtime, testdata: Path) -> None:
    cid, sid = gallery(rt, "blurry")
    photo = Image.open(johns(testdata)[0]).filter(ImageFilter.GaussianBlur(5))
    buf = io.BytesIO()
    photo.save(buf, format="JPEG")
    with pytest.raises(FaceplaneError) as exc:
        enroll_faces(rt, CO, cid, sid, ImageSource("image", data=buf.getvalue()))
    assert code(exc) is Err.FACE_BLURRY
    assert exc.value.details["reasons"][0]["measure"] == "sharpness"
    assert stored(rt, subject_id=sid) == 0


def test_a_photo_without_a_face_and_a_face_index_out_of_range(rt: Runtime, testdata: Path) -> None:
    cid, sid = gallery(rt, "errors")
    with pytest.raises(FaceplaneError) as exc:
        enroll_faces(rt, CO, cid, sid, image(testdata / NO_FACE))
    assert code(exc) is Err.FACE_NOT_FOUND
    with pytest.raises(FaceplaneError) as exc:
        enroll_faces(rt, CO, cid, sid, image(johns(testdata)[0]), face="3")
    assert code(exc) is Err.FACE_INDEX_OUT_OF_RANGE and exc.value.details["faces"] == 1


def test_another_companys_collection_is_not_found(rt: Runtime, testdata: Path) -> None:
    cid, sid = gallery(rt, "private")
    with pytest.raises(FaceplaneError) as exc:
        enroll_faces(rt, "someone else", cid, sid, image(johns(testdata)[0]))
    assert code(exc) is Err.COLLECTION_NOT_FOUND


def test_a_collection_of_another_embedding_space_refuses_enroll(
    rt: Runtime, testdata: Path
) -> None:
    cid, sid = gallery(rt, "old model")
    with rt.store.db.begin() as conn:
        conn.execute(update(collections).where(collections.c.id == cid).values(model="other_v1"))
    with pytest.raises(FaceplaneError) as exc:
        enroll_faces(rt, CO, cid, sid, image(johns(testdata)[0]))
    assert code(exc) is Err.EMBEDDING_MODEL_MISMATCH
    assert exc.value.details["collection_model"] == "other_v1"
