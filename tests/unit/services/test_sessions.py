"""services/sessions.py and services/session_analyses.py: analysis sessions in their tables,
media chosen for an analysis, analyses run as tasks on real photos, deletion, tenants."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import select

from databases import throwaway_postgres
from faceplane.errors import Err, FaceplaneError
from faceplane.runtime import Runtime
from faceplane.services import session_analyses as analyses
from faceplane.services import sessions
from faceplane.services.session_analyses import AnalysisRequest
from faceplane.services.sessions import Media, Upload
from faceplane.settings import Settings
from faceplane.store.db import analysis_sessions, session_analyses, session_media, tasks
from faceplane.tasks.runner import claim_task, execute

IMAGES = "faces/deepface/images"
ACME, RIVAL = "company-acme", "company-rival"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def rt(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Runtime]:
    """A runtime of its own on each database: its tasks are run inline by the tests."""
    with ExitStack() as stack:
        url = stack.enter_context(throwaway_postgres()) if request.param == "postgresql" else None
        runtime = Runtime.open(
            Settings(data_dir=tmp_path_factory.mktemp("sessions"), database_url=url)
        )
        stack.callback(runtime.store.db.dispose)
        yield runtime
        runtime.close()


def jpeg(testdata: Path, name: str) -> bytes:
    return (testdata / IMAGES / name).read_bytes()


def blank_png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (96, 96), "white").save(buf, format="PNG")
    return buf.getvalue()


def rows(rt: Runtime, table: Any, column: str, value: str) -> list[dict[str, Any]]:
    with rt.store.db.connect() as conn:
        query = select(table).where(table.c[column] == value)
        return [dict(r) for r in conn.execute(query).mappings()]


def run(rt: Runtime, task_id: str) -> str:
    """Run a queued task here, as a worker would."""
    row = claim_task(rt.store, task_id, "unit-test", 60)
    assert row is not None
    return execute(rt, row)


def media(tags: list[str], mid: str) -> Media:
    return Media(mid, "s", "photo", tags, {}, f"{mid}.jpg", 1, "0" * 64, 0.0, "", "k")


def expect(err: Err, fn: Any, *args: Any) -> FaceplaneError:
    with pytest.raises(FaceplaneError) as caught:
        fn(*args)
    assert caught.value.err is err, caught.value
    return caught.value


def test_a_session_is_three_kinds_of_rows_and_its_photos_are_blobs(
    rt: Runtime, testdata: Path
) -> None:
    img1, img2 = jpeg(testdata, "img1.jpg"), jpeg(testdata, "img2.jpg")
    uploads = [Upload("id", "passport.jpg", img1), Upload("selfie", "me.jpg", img2)]
    made = sessions.create_session(
        rt, ACME, "user:u1", uploads, {"selfie": ["photo_selfie"]}, {"case": 7}, ["kyc"]
    )
    assert [m.original_name for m in made.media] == ["passport.jpg", "me.jpg"]
    assert [m.tags for m in made.media] == [[], ["photo_selfie"]]
    assert [m.sha256 for m in made.media] == [hashlib.sha256(d).hexdigest() for d in (img1, img2)]
    [row] = rows(rt, analysis_sessions, "id", made.id)
    assert row["company_id"] == ACME and row["creator"] == "user:u1"
    assert json.loads(row["tags_json"]) == ["kyc"] and json.loads(row["metadata_json"]) == {
        "case": 7
    }
    stored = rows(rt, session_media, "session_id", made.id)
    assert [r["position"] for r in sorted(stored, key=lambda r: r["position"])] == [0, 1]
    assert {r["company_id"] for r in stored} == {ACME}
    for m, data in zip(made.media, (img1, img2), strict=True):
        assert rt.store.blobs.get(m.blob_key) == data
        assert m.blob_key.startswith(f"sessions/{made.id}/") and f"/v1/blobs/{m.blob_key}" in m.url
    again = sessions.get_session(rt, ACME, made.id)
    assert [m.id for m in again.media] == [m.id for m in made.media]
    assert again.tags == ["kyc"] and again.metadata == {"case": 7} and again.analyses == []


def test_a_refused_upload_stores_nothing(rt: Runtime, testdata: Path) -> None:
    img = jpeg(testdata, "img1.jpg")
    before = {p for p in rt.store.blobs.root.rglob("*") if p.is_file()}
    with rt.store.db.connect() as conn:
        count = len(conn.execute(select(analysis_sessions.c.id)).all())
    create = sessions.create_session
    expect(Err.MISSING_ARGUMENT, create, rt, ACME, "cli", [], {}, {})
    many = [Upload(f"m{i}", "a.jpg", img) for i in range(sessions.MAX_MEDIA + 1)]
    expect(Err.BATCH_LIMIT_EXCEEDED, create, rt, ACME, "cli", many, {}, {})
    one = [Upload("a", "a.jpg", img)]
    stray = expect(Err.INVALID_ARGUMENT, create, rt, ACME, "cli", one, {"b": ["x"]}, {})
    assert stray.details["media"] == ["b"]
    expect(Err.INVALID_ARGUMENT, create, rt, ACME, "cli", one, {"a": ["bad tag"]}, {})
    video = [Upload("a", "a.jpg", img), Upload("clip", "clip.mp4", b"\x00\x00\x00\x18ftypmp42")]
    refused = expect(Err.IMAGE_FORMAT_UNSUPPORTED, create, rt, ACME, "cli", video, {}, {})
    assert refused.details["media"] == "clip"
    assert {p for p in rt.store.blobs.root.rglob("*") if p.is_file()} == before
    with rt.store.db.connect() as conn:
        assert len(conn.execute(select(analysis_sessions.c.id)).all()) == count


def test_another_company_s_session_is_not_found_like_a_missing_one(
    rt: Runtime, testdata: Path
) -> None:
    made = sessions.create_session(
        rt, ACME, "cli", [Upload("a", "a.jpg", jpeg(testdata, "img1.jpg"))], {}, {}
    )
    foreign = expect(Err.RESOURCE_NOT_FOUND, sessions.get_session, rt, RIVAL, made.id)
    missing = expect(Err.RESOURCE_NOT_FOUND, sessions.get_session, rt, ACME, "0" * 32)
    assert foreign.message == missing.message and foreign.details == {"session_id": made.id}
    expect(Err.RESOURCE_NOT_FOUND, sessions.delete_session, rt, RIVAL, made.id)
    wanted = [AnalysisRequest("COLLECTION")]
    expect(Err.RESOURCE_NOT_FOUND, analyses.start_analyses, rt, RIVAL, made.id, wanted)
    [started] = analyses.start_analyses(rt, ACME, made.id, wanted)
    expect(Err.RESOURCE_NOT_FOUND, analyses.get_analysis, rt, RIVAL, started.id)
    assert sessions.get_session(rt, ACME, made.id).media  # untouched by the rival
    run(rt, started.task_id)


def test_analysis_types_and_their_costs() -> None:
    assert analyses.check_type("BIOMETRY").operation == "compare"
    assert expect(Err.NOT_IMPLEMENTED, analyses.check_type, "QUALITY").details == {
        "type": "QUALITY"
    }
    expect(Err.INVALID_ARGUMENT, analyses.check_type, "PALMISTRY")
    wanted = [AnalysisRequest("BIOMETRY"), AnalysisRequest("COLLECTION")] * 2
    assert analyses.analysis_costs(wanted) == {"compare": 2, "blacklist_check": 2}


def test_no_media_named_or_an_empty_list_lets_the_rules_choose() -> None:
    folder = [media(["photo_id_front"], "id"), media(["photo_selfie"], "selfie")]
    for named in ((), None):
        req = AnalysisRequest("COLLECTION", named or ())
        assert [m.id for m in analyses.pick_media(folder, req)] == ["selfie"]
    assert [m.id for m in analyses.pick_media(folder, AnalysisRequest("BIOMETRY"))] == [
        "id",
        "selfie",
    ]
    one = AnalysisRequest("COLLECTION", ("id",))
    assert [m.id for m in analyses.pick_media(folder, one)] == ["id"]
    unknown = expect(
        Err.RESOURCE_NOT_FOUND, analyses.pick_media, folder, AnalysisRequest("COLLECTION", ("x",))
    )
    assert unknown.details["media"] == ["x"]
    untagged = [media([], "a"), media([], "b")]
    expect(Err.INVALID_ARGUMENT, analyses.pick_media, untagged, AnalysisRequest("COLLECTION"))
    expect(Err.INVALID_ARGUMENT, analyses.pick_media, folder[:1], AnalysisRequest("BIOMETRY"))


def test_an_analysis_is_a_task_whose_state_and_result_are_read_from_it(
    rt: Runtime, testdata: Path
) -> None:
    uploads = [Upload("a", "a.jpg", jpeg(testdata, "img1.jpg"))]
    uploads.append(Upload("b", "b.jpg", jpeg(testdata, "img2.jpg")))
    made = sessions.create_session(rt, ACME, "cli", uploads, {}, {})
    [started] = analyses.start_analyses(rt, ACME, made.id, [AnalysisRequest("BIOMETRY")])
    assert started.id == started.task_id and started.status == "queued"
    assert [m.id for m in started.source_media] == [m.id for m in made.media]
    [row] = rows(rt, session_analyses, "id", started.id)
    assert json.loads(row["inputs_json"]) == {
        "image1": made.media[0].id,
        "image2": made.media[1].id,
    }
    [task] = rows(rt, tasks, "id", started.task_id)
    assert task["batch_id"] == made.id and task["operation"] == "compare"
    assert run(rt, started.task_id) == "succeeded"
    done = analyses.get_analysis(rt, ACME, started.id)
    assert done.status == "succeeded" and done.result is not None and done.result["match"]
    assert done.updated_at >= done.created_at and done.error is None
    assert [a.id for a in sessions.get_session(rt, ACME, made.id).analyses] == [started.id]


def test_a_failed_analysis_names_the_media_not_the_task_input(rt: Runtime, testdata: Path) -> None:
    uploads = [
        Upload("face", "a.jpg", jpeg(testdata, "img1.jpg")),
        Upload("b", "b.png", blank_png()),
    ]
    made = sessions.create_session(rt, ACME, "cli", uploads, {}, {})
    blank = made.media[1].id
    [started] = analyses.start_analyses(rt, ACME, made.id, [AnalysisRequest("BIOMETRY")])
    assert run(rt, started.task_id) == "failed"
    error = analyses.get_analysis(rt, ACME, started.id).error
    assert error is not None and error["code"] == "FACE_NOT_FOUND"
    assert error["details"]["media_id"] == blank and "field" not in error["details"]
    assert blank in error["message"] and "image2" not in error["message"]


def test_deleting_a_session_deletes_its_photos_rows_and_task_data(
    rt: Runtime, testdata: Path
) -> None:
    uploads = [Upload("a", "a.jpg", jpeg(testdata, "img1.jpg"))]
    made = sessions.create_session(rt, ACME, "cli", uploads, {}, {})
    first, queued = (
        analyses.start_analyses(rt, ACME, made.id, [AnalysisRequest("COLLECTION")])[0]
        for _ in range(2)
    )
    assert run(rt, first.task_id) == "succeeded"
    root = rt.store.blobs.root
    assert (root / "tasks" / first.task_id).is_dir()
    sessions.delete_session(rt, ACME, made.id)
    assert not (root / "sessions" / made.id).exists()
    assert not (root / "tasks" / first.task_id).exists()
    assert not (root / "tasks" / queued.task_id).exists()
    assert rows(rt, analysis_sessions, "id", made.id) == []
    assert rows(rt, session_media, "session_id", made.id) == []
    assert rows(rt, session_analyses, "session_id", made.id) == []
    done, canceled = (rows(rt, tasks, "id", a.task_id)[0] for a in (first, queued))
    assert done["purged"] and done["result_json"] is None and done["input_json"] == "{}"
    assert canceled["status"] == "canceled" and canceled["purged"]
    expect(Err.RESOURCE_NOT_FOUND, sessions.get_session, rt, ACME, made.id)
    expect(Err.RESOURCE_NOT_FOUND, analyses.get_analysis, rt, ACME, first.id)
