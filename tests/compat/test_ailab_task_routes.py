"""AILabTools async tasks: a task's answer has the shape and the codes of the sync route."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import update

from ailab_support import (
    ANALYZER,
    COMPARE,
    DB,
    DEEPFACE,
    NO_FACE_PHOTOS,
    QUERY,
    REVOKE,
    SUBMIT,
    blank_png,
    failed,
    ok,
)
from faceplane.settings import Settings
from faceplane.store.db import tasks, write_tx
from support import authed_client


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("ailab-tasks") / "data", workers=1)
    with authed_client(settings) as c:
        yield c


@pytest.fixture(scope="module")
def idle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """No workers: tasks stay queued, to be queried and revoked."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("ailab-idle") / "data", workers=0)
    with authed_client(settings) as c:
        yield c


def submit_and_wait(
    client: TestClient, data: dict[str, Any], files: dict[str, Any]
) -> tuple[str, Response]:
    """Submit a task and long-poll it to its end: (task id, the query's answer)."""
    task_id = ok(client.post(SUBMIT, data=data, files=files))["task_id"]
    return task_id, client.get(QUERY, params={"task_id": task_id, "wait_s": 60})


def run_task(client: TestClient, data: dict[str, Any], files: dict[str, Any]) -> Response:
    """Submit a task and long-poll it to its end; the query's answer."""
    return submit_and_wait(client, data, files)[1]


def deepface(testdata: Path, name: str) -> tuple[str, bytes]:
    """A file upload of one deepface sample photo."""
    return (name, (testdata / DEEPFACE / name).read_bytes())


def same_shape(a: Any, b: Any) -> bool:
    """The same keys at every level of two JSON values (list lengths included)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_shape(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_shape(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) or a is None or b is None


def test_async_task_done_failed_and_not_revocable(client: TestClient, astronaut: bytes) -> None:
    submitted = ok(
        client.post(SUBMIT, data={"operation": "detect"}, files={"image": ("a", astronaut)})
    )
    assert submitted["task_type"] == "async"
    task_id = submitted["task_id"]
    done = ok(client.get(QUERY, params={"task_id": task_id, "wait_s": 30}))
    assert done["task_id"] == task_id and done["task_status"] == 2
    assert done["data"]["face_num"] == len(done["data"]["faces"]) == 1
    failed(client.post(REVOKE, data={"task_id": task_id}), "ERROR_TASK_REVOCATION_FAILED")

    broken = run_task(client, {"operation": "detect"}, {"image": ("x.jpg", b"not an image")})
    failed(broken, "FILE_DECODING_FAILURE")


@pytest.mark.parametrize("photo", NO_FACE_PHOTOS)
def test_async_detect_of_a_real_photo_without_a_face_fails_like_the_sync_route(
    client: TestClient, testdata: Path, photo: str
) -> None:
    files = {"image": ("p.jpg", (testdata / photo).read_bytes())}
    sync = failed(client.post(ANALYZER, files=files), "ERROR_NO_FACE_IN_FILE")
    task_id, answer = submit_and_wait(client, {"operation": "detect"}, files)
    body = failed(answer, "ERROR_NO_FACE_IN_FILE", sync["error_detail"]["message"])
    assert body["error_msg"] == sync["error_msg"]
    # The task itself failed (the native task API agrees): it did not succeed with no faces.
    native = client.get(f"/v1/tasks/{task_id}").json()
    assert native["status"] == "failed" and native["error"]["code"] == "FACE_NOT_FOUND"


def test_async_detect_and_compare_answer_the_sync_routes_shapes(
    client: TestClient, testdata: Path, astronaut: bytes
) -> None:
    image = {"image": ("a.jpg", astronaut)}
    sync = ok(client.post(ANALYZER, files=image, data={"max_face_num": "1"}))["data"]
    done = ok(run_task(client, {"operation": "detect", "max_face_num": "1"}, image))
    assert same_shape(done["data"], sync), (done["data"], sync)
    assert done["data"]["face_num"] == sync["face_num"] == 1
    assert done["data"]["faces"][0]["box"] == pytest.approx(sync["faces"][0]["box"], abs=1)

    pair = {
        "image_target": deepface(testdata, "img1.jpg"),
        "image_template": deepface(testdata, "img2.jpg"),
    }
    sync = ok(client.post(COMPARE, files=pair))["data"]
    done = ok(run_task(client, {"operation": "compare"}, pair))
    assert same_shape(done["data"], sync), (done["data"], sync)
    assert done["data"]["match"] is sync["match"] is True
    assert done["data"]["similarity"] == pytest.approx(sync["similarity"], abs=1e-4)


def test_async_compare_failure_names_ailabs_fields(client: TestClient, astronaut: bytes) -> None:
    pair = {"image_target": ("b.png", blank_png()), "image_template": ("a.jpg", astronaut)}
    sync = failed(client.post(COMPARE, files=pair), "ERROR_NO_FACE_IN_FILE")
    done = run_task(client, {"operation": "compare"}, pair)
    failed(done, "ERROR_NO_FACE_IN_FILE", sync["error_detail"]["message"])
    assert "`image_target`" in sync["error_detail"]["message"]


def test_async_enroll_and_search_answer_the_sync_routes_shapes(
    client: TestClient, testdata: Path
) -> None:
    ok(client.post(f"{DB}/group/create", data={"group_id": "async-stars"}))
    for uid in ("angelina", "other"):
        ok(client.post(f"{DB}/user/add", data={"group_id": "async-stars", "uid": uid}))
    user = {"group_id": "async-stars", "uid": "angelina"}
    sync = ok(
        client.post(f"{DB}/face/add", data=user, files={"image": deepface(testdata, "img1.jpg")})
    )
    done = ok(
        run_task(client, {"operation": "enroll", **user}, {"image": deepface(testdata, "img2.jpg")})
    )
    assert same_shape(done["data"], sync["data"]), (done["data"], sync["data"])
    assert (done["data"]["group_id"], done["data"]["uid"]) == ("async-stars", "angelina")
    other = {"group_id": "async-stars", "uid": "other"}
    ok(client.post(f"{DB}/face/add", data=other, files={"image": deepface(testdata, "img3.jpg")}))

    probe = {"image": deepface(testdata, "img4.jpg")}
    ask = {"group_id": "async-stars", "max_user_num": "1", "far": "0.5"}
    sync = ok(client.post(f"{DB}/search", data=ask, files=probe))["data"]
    done = ok(run_task(client, {"operation": "search", **ask}, probe))["data"]
    assert "matches" not in str(done) and "collection_id" not in done
    assert same_shape(done, sync), (done, sync)
    assert done["group_id"] == sync["group_id"] == "async-stars"
    # max_user_num means the same on both paths: one user, the same one.
    assert len(done["faces"][0]["user_list"]) == len(sync["faces"][0]["user_list"]) == 1
    assert [u["uid"] for u in done["faces"][0]["user_list"]] == [
        u["uid"] for u in sync["faces"][0]["user_list"]
    ]


def test_async_task_argument_errors(client: TestClient, astronaut: bytes) -> None:
    failed(client.get(QUERY), "MISSING_PARAMETERS")
    failed(client.get(QUERY, params={"task_id": "no-such-task"}), "ERROR_RESOURCE_NOT_FOUND")
    failed(client.post(SUBMIT, files={"image": ("a", astronaut)}), "MISSING_PARAMETERS")
    enroll = {"operation": "enroll", "group_id": "nope", "uid": "x"}
    failed(
        client.post(SUBMIT, data=enroll, files={"image": ("a", astronaut)}),
        "ERROR_USER_GROUP_NOT_FOUND",
    )
    attrs = {"operation": "detect", "face_attributes_type": "Age"}
    failed(
        client.post(SUBMIT, data=attrs, files={"image": ("a", astronaut)}), "ERROR_AI_NOT_EXISTS"
    )


def test_queued_task_is_revoked_once(idle: TestClient, astronaut: bytes) -> None:
    task_id = ok(
        idle.post(SUBMIT, data={"operation": "detect"}, files={"image": ("a", astronaut)})
    )["task_id"]
    queued = ok(idle.get(QUERY, params={"task_id": task_id}))
    assert queued["task_status"] == 0 and "data" not in queued
    assert ok(idle.post(REVOKE, data={"task_id": task_id}))["status"] == "canceled"
    failed(idle.delete(REVOKE, params={"task_id": task_id}), "ERROR_TASK_REVOKED")
    failed(idle.get(QUERY, params={"task_id": task_id}), "ERROR_TASK_REVOKED")


def test_a_long_poll_that_times_out_answers_the_queued_task(
    idle: TestClient, astronaut: bytes
) -> None:
    task_id = ok(
        idle.post(SUBMIT, data={"operation": "detect"}, files={"image": ("a", astronaut)})
    )["task_id"]
    waited = ok(idle.get(QUERY, params={"task_id": task_id, "wait_s": 0.3}))
    assert waited["task_id"] == task_id and waited["task_status"] == 0


@pytest.mark.parametrize("wait_s", [0, 0.3])
def test_an_expired_task_answers_resource_reclaimed(
    idle: TestClient, astronaut: bytes, wait_s: float
) -> None:
    task_id = ok(
        idle.post(SUBMIT, data={"operation": "detect"}, files={"image": ("a", astronaut)})
    )["task_id"]
    store = idle.app.state.rt.store  # type: ignore[attr-defined]
    with write_tx(store.db) as conn:  # what expiry leaves: the row, its inputs gone
        conn.execute(update(tasks).where(tasks.c.id == task_id).values(purged=True))
    answer = idle.get(QUERY, params={"task_id": task_id, "wait_s": wait_s})
    failed(answer, "ERROR_RESOURCE_RECLAIMED")
