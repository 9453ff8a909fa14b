"""Pho.to answers: getresult for each task state, and errors about a named request id."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from faceplane.compat.photo import render
from faceplane.errors import Err, FaceplaneError


def tags(xml: str) -> dict[str, str]:
    return {child.tag: child.text or "" for child in ET.fromstring(xml.encode())}


def test_a_succeeded_detect_task_answers_ok_with_its_result_document_url() -> None:
    task = {"request_id": "r1", "status": "succeeded", "result_url": "http://h/v1/blobs/x.json"}
    assert tags(render.render_task(task)) == {
        "request_id": "r1",
        "status": "OK",
        "description": render.DONE_DESCRIPTION,
        "err_code": "0",
        "result_url": "http://h/v1/blobs/x.json",
    }


def test_a_succeeded_crop_task_lists_only_the_urls_it_has() -> None:
    urls = {tag: f"http://h/{tag}" for tag in render.URL_TAGS}
    out = tags(render.render_task({"request_id": "r", "status": "succeeded", **urls}))
    assert [t for t in out if t.endswith("_url")] == list(render.URL_TAGS)


def test_queued_and_running_are_in_progress() -> None:
    for status in ("queued", "running"):
        assert tags(render.render_task({"request_id": "r", "status": status}))["status"] == (
            "InProgress"
        )


def test_a_failed_task_renders_its_code_and_an_unknown_code_as_internal() -> None:
    failed = {"request_id": "r", "status": "failed", "error": {"code": "FACE_NOT_FOUND"}}
    out = tags(render.render_task(failed))
    assert (out["status"], out["err_code"]) == ("Error", "-1000")
    failed["error"] = {"code": "SOMETHING_RETIRED", "message": "gone"}
    out = tags(render.render_task(failed))
    assert (out["status"], out["err_code"], out["description"]) == ("Error", "1", "gone")


def test_wrong_id_names_the_request_id_it_is_given_escaped() -> None:
    status, xml = render.render_error("a<&>b", FaceplaneError(Err.TASK_NOT_FOUND))
    assert status == 200
    out = tags(xml)
    assert (out["request_id"], out["status"], out["err_code"]) == ("a<&>b", "WrongID", "612")
    assert "request_id" not in tags(render.render_error(None, FaceplaneError(Err.TASK_EXPIRED))[1])
