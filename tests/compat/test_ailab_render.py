"""The AILab renderer's pure functions: the catalogue's AILab codes and each operation's shape."""

from __future__ import annotations

from typing import Any

import pytest

from faceplane.compat.ailab import render
from faceplane.errors import Err, FaceplaneError, vendor_home

SEARCH_OUT: dict[str, Any] = {
    "collection_id": "c1",
    "far": 0.001,
    "faces": [
        {
            "box": {"x": 1, "y": 2, "width": 3, "height": 4},
            "threshold": 0.7,
            "matches": [
                {
                    "subject_id": "s1",
                    "subject_name": "angelina",
                    "external_id": None,
                    "face_token": "t1",
                    "similarity": 0.93,
                }
            ],
        }
    ],
}
ENROLL_OUT: dict[str, Any] = {
    "face_token": "t1",
    "faces": [{"face_token": "t1", "face_index": 0, "box": {"x": 1}, "quality": {"q": 1}}],
    "unindexed": [],
    "embedder": "dlib_resnet",
}


def task(status: str, **fields: Any) -> dict[str, Any]:
    """A task as the native API renders it."""
    return {
        "request_id": "T1",
        "operation": "detect",
        "status": status,
        "created_at": "2030-01-01T00:00:00.000+00:00",
        "finished_at": None,
        **fields,
    }


def test_not_implemented_is_the_ai_that_does_not_exist_not_image_storage() -> None:
    assert Err.NOT_IMPLEMENTED.ailab == "ERROR_AI_NOT_EXISTS"
    status, body = render.render_error("R", FaceplaneError(Err.NOT_IMPLEMENTED, "No swap."))
    assert status == body["error_code"] == 404
    assert body["error_detail"]["code"] == body["error_code_str"] == "ERROR_AI_NOT_EXISTS"
    assert body["error_msg"] == (
        "AI does not exist or has been deactivated, please contact the platform. - No swap."
    )


def test_image_storage_not_supported_keeps_a_home_and_unknown_paths_keep_theirs() -> None:
    assert vendor_home("ailab", "ERROR_IMAGE_STORAGE_NOT_SUPPORTED") is Err.NOT_IMPLEMENTED
    assert vendor_home("ailab", "ERROR_AI_NOT_EXISTS") is Err.ROUTE_NOT_FOUND
    assert not any(err.ailab == "ERROR_IMAGE_STORAGE_NOT_SUPPORTED" for err in Err)


def test_analyzer_data_counts_the_faces_first() -> None:
    data = render.analyzer_data({"image": {"width": 2}, "faces": [{}, {}], "models": {}})
    assert list(data) == ["face_num", "image", "faces", "models"] and data["face_num"] == 2


def test_compare_data_names_the_sides_as_ailab_does() -> None:
    out = {"similarity": 0.9, "match": True, "face1": {"box": 1}, "face2": {"box": 2}}
    data = render.compare_data(out)
    assert data == {
        "similarity": 0.9,
        "match": True,
        "face_target": {"box": 1},
        "face_template": {"box": 2},
    }
    # Embeddings instead of images: no face on a side, still both keys.
    assert (
        render.compare_data({"match": False, "face1": None, "face2": None})["face_target"] is None
    )


def test_search_data_lists_users_by_uid_without_native_fields() -> None:
    data = render.search_data(SEARCH_OUT, "stars")
    assert data == {
        "group_id": "stars",
        "far": 0.001,
        "faces": [
            {
                "box": {"x": 1, "y": 2, "width": 3, "height": 4},
                "threshold": 0.7,
                "user_list": [{"uid": "angelina", "face_token": "t1", "score": 0.93}],
            }
        ],
    }


def test_enroll_data_keeps_token_box_and_quality_of_each_face() -> None:
    data = render.enroll_data(ENROLL_OUT, "stars", "angelina")
    assert data == {
        "group_id": "stars",
        "uid": "angelina",
        "face_token": "t1",
        "faces": [{"face_token": "t1", "box": {"x": 1}, "quality": {"q": 1}}],
        "unindexed": [],
    }


@pytest.mark.parametrize(
    ("operation", "out", "expected"),
    [
        ("search", SEARCH_OUT, render.search_data(SEARCH_OUT, "stars")),
        ("enroll", ENROLL_OUT, render.enroll_data(ENROLL_OUT, "stars", "angelina")),
        ("detect", {"faces": []}, {"face_num": 0, "faces": []}),
        ("blacklist_check", {"hit": False}, {"hit": False}),
    ],
)
def test_operation_data_is_the_sync_routes_renderer(
    operation: str, out: dict[str, Any], expected: dict[str, Any]
) -> None:
    options = {"group_id": "stars", "uid": "angelina", "collection_id": "c1"}
    assert render.operation_data(operation, out, options) == expected


def test_task_answer_reports_queued_and_done_tasks() -> None:
    queued = render.task_answer(task("queued"), {})
    assert queued["task_status"] == 0 and "data" not in queued
    assert render.task_answer(task("running"), {})["task_status"] == 1
    done = render.task_answer(
        task("succeeded", operation="crop", result={"faces": []}, result_url="http://r"), {}
    )
    assert done["task_status"] == 2 and done["data"] == {"faces": [], "result_url": "http://r"}
    found = render.task_answer(task("succeeded", operation="search", result=SEARCH_OUT), {})
    assert found["data"]["faces"][0]["user_list"][0]["uid"] == "angelina"


def test_a_failed_task_raises_its_own_error_in_ailab_terms() -> None:
    error = {"code": "FACE_NOT_FOUND", "message": "No face was found in `image1`.", "details": {}}
    with pytest.raises(FaceplaneError) as caught:
        render.task_answer(task("failed", operation="compare", error=error), {})
    assert caught.value.err is Err.FACE_NOT_FOUND
    assert caught.value.message == "No face was found in `image_target`."
    assert caught.value.details["task_id"] == "T1"
    unknown = {"code": "NO_SUCH_MEMBER", "message": "?", "details": {"task_id": "old"}}
    with pytest.raises(FaceplaneError) as caught:
        render.task_answer(task("failed", error=unknown), {})
    assert caught.value.err is Err.INTERNAL and caught.value.details["task_id"] == "T1"
    with pytest.raises(FaceplaneError) as caught:
        render.task_answer(task("canceled"), {})
    assert caught.value.err is Err.TASK_REVOKED


def test_group_and_user_renderers() -> None:
    collection = {"name": "stars", "kind": "gallery", "subjects": 2, "faces": 3, "created_at": 1.0}
    assert render.group_list_data({"collections": [collection], "next_cursor": "x"}) == {
        "group_id_list": ["stars"],
        "groups": [
            {
                "group_id": "stars",
                "kind": "gallery",
                "user_num": 2,
                "face_num": 3,
                "created_at": 1.0,
            }
        ],
        "next_cursor": "x",
    }
    subject = {"name": "ann", "metadata": {"user_info": "actor"}, "faces": 1, "created_at": 2.0}
    assert render.user_data(subject, "stars") == {
        "group_id": "stars",
        "uid": "ann",
        "user_info": "actor",
        "created_at": 2.0,
    }
    page = render.user_list_data({"subjects": [subject], "next_cursor": None}, "stars")
    assert page == {
        "group_id": "stars",
        "users": [{"uid": "ann", "face_num": 1}],
        "next_cursor": None,
    }
