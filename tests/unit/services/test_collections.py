"""services.collections, called directly: CRUD, pages, tenants, limits and real deletion."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from faceplane.errors import Err, FaceplaneError
from faceplane.runtime import Runtime
from faceplane.services import collections as col
from faceplane.services.enroll import enroll_faces
from faceplane.services.images import ImageSource
from faceplane.settings import Settings
from faceplane.store.db import face_removals, faces

JOHNS = "faces/dlib/examples/johns"


@pytest.fixture(scope="module")
def rt(tmp_path_factory: pytest.TempPathFactory) -> Runtime:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("collections"),
        max_collections=4,
        collection_max_subjects=3,
        subject_max_faces=2,
        enroll_keep_crops=True,
    )
    return Runtime.open(settings)


def raises(err: Err, fn: object, *args: object, **kwargs: object) -> FaceplaneError:
    """Call fn and return the FaceplaneError it must raise, checking its code."""
    with pytest.raises(FaceplaneError) as exc:
        fn(*args, **kwargs)  # type: ignore[operator]
    assert exc.value.err is err, exc.value
    return exc.value


def john_photos(testdata: Path, person: int = 0) -> list[bytes]:
    folder = sorted(p for p in (testdata / JOHNS).iterdir() if p.is_dir())[person]
    return [p.read_bytes() for p in sorted(folder.glob("*.jpg"))]


def enroll(rt: Runtime, company: str, cid: str, sid: str, data: bytes) -> str:
    return str(enroll_faces(rt, company, cid, sid, ImageSource("image", data=data))["face_token"])


def test_a_collection_is_pinned_to_the_embedding_space_in_force(rt: Runtime) -> None:
    made = col.create_collection(rt, "co-pin", "pinned", "blacklist", "who")
    _, space = col.current_space(rt)
    assert made["model"] == space and made["kind"] == "blacklist"
    assert made["subjects"] == 0 and made["faces"] == 0 and made["description"] == "who"
    assert col.get_collection(rt, "co-pin", made["id"]) == made


def test_bad_input_gets_its_code(rt: Runtime) -> None:
    raises(Err.INVALID_ARGUMENT, col.create_collection, rt, "co-bad", "x", "album")
    raises(Err.MISSING_ARGUMENT, col.create_collection, rt, "co-bad", "  ", "gallery")
    cid = col.create_collection(rt, "co-bad", "x", "gallery")["id"]
    raises(Err.COLLECTION_EXISTS, col.create_collection, rt, "co-bad", "x", "gallery")
    raises(Err.INVALID_ARGUMENT, col.update_collection, rt, "co-bad", cid, " ", None)
    raises(Err.MISSING_ARGUMENT, col.create_subject, rt, "co-bad", cid, "")
    sid = col.create_subject(rt, "co-bad", cid, "a")["id"]
    raises(Err.SUBJECT_EXISTS, col.create_subject, rt, "co-bad", cid, "a")
    raises(Err.INVALID_ARGUMENT, col.update_subject, rt, "co-bad", cid, sid, {"name": ""})


def test_names_are_unique_per_company_not_across_companies(rt: Runtime) -> None:
    a = col.create_collection(rt, "co-a", "staff", "gallery")
    b = col.create_collection(rt, "co-b", "staff", "gallery")
    assert a["id"] != b["id"]
    # Another company's collection is not found, exactly like one that does not exist.
    raises(Err.COLLECTION_NOT_FOUND, col.get_collection, rt, "co-a", b["id"])
    raises(Err.COLLECTION_NOT_FOUND, col.delete_collection, rt, "co-a", b["id"])
    raises(Err.COLLECTION_NOT_FOUND, col.create_subject, rt, "co-a", b["id"], "x")
    assert [c["id"] for c in col.list_collections(rt, "co-a", 10, None)["collections"]] == [a["id"]]


def test_the_cli_finds_a_collection_by_id_or_name_in_its_company_only(rt: Runtime) -> None:
    mine = col.create_collection(rt, "co-find", "staff", "gallery")["id"]
    theirs = col.create_collection(rt, "co-find-other", "visitors", "gallery")["id"]
    assert col.find_collection_id(rt, "co-find", "staff") == mine
    assert col.find_collection_id(rt, "co-find", mine) == mine
    assert col.find_collection_id(rt, "co-find", "visitors") is None
    assert col.find_collection_id(rt, "co-find", theirs) is None
    assert col.find_collection_id(rt, "co-find", "nobody") is None


def test_rebuilding_indexes_covers_every_company_or_the_named_collections(
    rt: Runtime, testdata: Path
) -> None:
    photos = john_photos(testdata)
    made = {}
    for company, photo in (("co-ix-a", photos[0]), ("co-ix-b", photos[1])):
        cid = col.create_collection(rt, company, "shared name", "gallery")["id"]
        sid = col.create_subject(rt, company, cid, "john")["id"]
        enroll(rt, company, cid, sid, photo)
        made[company] = cid
    empty = col.create_collection(rt, "co-ix-a", "empty", "gallery")["id"]
    by_name = dict(col.rebuild_indexes(rt, "shared name"))
    assert by_name == {made["co-ix-a"]: 1, made["co-ix-b"]: 1}
    assert col.rebuild_indexes(rt, empty) == [(empty, 0)]
    everything = dict(col.rebuild_indexes(rt, None))
    assert everything.keys() >= {*made.values(), empty}
    assert col.rebuild_indexes(rt, "no such collection") == []


def test_pages_cover_every_collection_once_and_kind_filters(rt: Runtime) -> None:
    made = {col.create_collection(rt, "co-pages", f"c{i}", "gallery")["id"] for i in range(3)}
    made.add(col.create_collection(rt, "co-pages", "bl", "blacklist")["id"])
    seen, cursor = [], None
    while True:
        page = col.list_collections(rt, "co-pages", 3, cursor)
        seen += [c["id"] for c in page["collections"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(made)
    blacklists = col.list_collections(rt, "co-pages", 10, None, kind="blacklist")
    assert [c["name"] for c in blacklists["collections"]] == ["bl"]
    raises(Err.COLLECTION_LIMIT_EXCEEDED, col.create_collection, rt, "co-pages", "c9", "gallery")


def test_subjects_are_limited_paged_and_updated(rt: Runtime) -> None:
    cid = col.create_collection(rt, "co-subj", "people", "gallery")["id"]
    sids = [col.create_subject(rt, "co-subj", cid, f"p{i}", f"ext{i}")["id"] for i in range(3)]
    raises(Err.SUBJECT_LIMIT_EXCEEDED, col.create_subject, rt, "co-subj", cid, "p3")
    first = col.list_subjects(rt, "co-subj", cid, 2, None)
    rest = col.list_subjects(rt, "co-subj", cid, 2, first["next_cursor"])
    assert sorted(s["id"] for s in first["subjects"] + rest["subjects"]) == sorted(sids)
    changed = col.update_subject(
        rt, "co-subj", cid, sids[0], {"name": "renamed", "metadata": {"team": "red"}}
    )
    assert changed["name"] == "renamed" and changed["metadata"] == {"team": "red"}
    assert changed["external_id"] == "ext0"
    raises(Err.SUBJECT_NOT_FOUND, col.get_subject, rt, "co-subj", cid, "nobody")


def test_deleting_a_subject_removes_its_faces_vectors_and_crops(
    rt: Runtime, testdata: Path
) -> None:
    cid = col.create_collection(rt, "co-del", "deletions", "gallery")["id"]
    keep = col.create_subject(rt, "co-del", cid, "keep")["id"]
    gone = col.create_subject(rt, "co-del", cid, "gone")["id"]
    kept = enroll(rt, "co-del", cid, keep, john_photos(testdata, 0)[0])
    tokens = [enroll(rt, "co-del", cid, gone, data) for data in john_photos(testdata, 1)[:2]]
    crops = rt.settings.data_dir / "blobs" / "collections" / cid / "faces"
    assert len(list(crops.iterdir())) == 3
    assert len(rt.store.indexes.get(rt.store.db, cid)) == 3
    col.delete_subject(rt, "co-del", cid, gone)
    assert len(rt.store.indexes.get(rt.store.db, cid)) == 1
    assert [p.stem for p in crops.iterdir()] == [kept]
    for token in tokens:
        raises(Err.FACE_TOKEN_NOT_FOUND, col.get_face, rt, "co-del", cid, token)
    with rt.store.db.connect() as conn:
        logged = conn.execute(
            select(func.count())
            .select_from(face_removals)
            .where(face_removals.c.collection_id == cid)
        ).scalar_one()
    assert logged == 2  # other processes' indexes learn of the removal from this log
    assert col.get_collection(rt, "co-del", cid)["faces"] == 1


def test_deleting_a_collection_leaves_no_face_vector_or_file(rt: Runtime, testdata: Path) -> None:
    cid = col.create_collection(rt, "co-del", "whole", "gallery")["id"]
    sid = col.create_subject(rt, "co-del", cid, "someone")["id"]
    enroll(rt, "co-del", cid, sid, john_photos(testdata, 2)[0])
    rt.store.indexes.rebuild(rt.store.db, cid)  # leaves index files on disk
    col.delete_collection(rt, "co-del", cid)
    with rt.store.db.connect() as conn:
        left = conn.execute(
            select(func.count()).select_from(faces).where(faces.c.collection_id == cid)
        ).scalar_one()
    assert left == 0
    assert not list((rt.settings.data_dir / "index").glob(f"{cid}.*"))
    assert not (rt.settings.data_dir / "blobs" / "collections" / cid).exists()
    raises(Err.COLLECTION_NOT_FOUND, col.get_collection, rt, "co-del", cid)


def test_faces_are_listed_moved_within_limits_and_deleted(rt: Runtime, testdata: Path) -> None:
    cid = col.create_collection(rt, "co-move", "moves", "gallery")["id"]
    a = col.create_subject(rt, "co-move", cid, "a")["id"]
    b = col.create_subject(rt, "co-move", cid, "b")["id"]
    photos = john_photos(testdata, 3)
    on_a = [enroll(rt, "co-move", cid, a, data) for data in photos[:2]]
    on_b = enroll(rt, "co-move", cid, b, photos[2])
    listed = col.list_faces(rt, "co-move", cid, a, 1, None)
    assert len(listed["faces"]) == 1 and listed["next_cursor"]
    assert "embedding" not in listed["faces"][0]
    raises(Err.FACE_LIMIT_EXCEEDED, col.move_face, rt, "co-move", cid, on_b, a)
    assert col.move_face(rt, "co-move", cid, on_a[0], a)["subject_id"] == a  # already there
    assert col.move_face(rt, "co-move", cid, on_a[0], b)["subject_id"] == b
    col.delete_face(rt, "co-move", cid, on_a[1])
    raises(Err.FACE_TOKEN_NOT_FOUND, col.delete_face, rt, "co-move", cid, on_a[1])
    assert col.get_subject(rt, "co-move", cid, a)["faces"] == 0
    assert col.get_subject(rt, "co-move", cid, b)["faces"] == 2
