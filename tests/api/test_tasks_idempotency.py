"""Idempotency keys over HTTP: the same request under one key is the same task (200), another
request under it is TASK_CONFLICT (409), on single tasks, batches and AILab's async route.

The check lives in the task service, whatever the executor, so these run on the embedded one
(with no workers: tasks stay queued, which is all they need)."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from faceplane.settings import Settings
from support import authed_client


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("idem") / "data", workers=0)
    with authed_client(settings) as c:
        yield c


def b64(data: bytes) -> dict[str, str]:
    return {"base64": base64.b64encode(data).decode()}


def grey_png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (120, 120), (90, 100, 110)).save(buf, format="PNG")
    return buf.getvalue()


def task_ids(client: TestClient) -> list[str]:
    return [t["request_id"] for t in client.get("/v1/tasks", params={"limit": 100}).json()["tasks"]]


def conflict(resp: Any, key: str) -> dict[str, Any]:
    assert resp.status_code == 409, resp.text
    err = resp.json()["error"]
    assert err["code"] == "TASK_CONFLICT" and err["details"]["idempotency_key"] == key
    return err


def test_a_reused_key_with_another_body_is_a_conflict_and_the_same_body_the_same_task(
    client: TestClient, astronaut: bytes
) -> None:
    body = {"operation": "detect", "input": {"image": b64(astronaut)}, "idempotency_key": "one"}
    first = client.post("/v1/tasks", json=body)
    assert first.status_code == 202, first.text
    task_id = first.json()["request_id"]
    again = client.post("/v1/tasks", json=body)
    assert again.status_code == 200 and again.json()["request_id"] == task_id
    err = conflict(client.post("/v1/tasks", json={**body, "options": {"max_faces": 1}}), "one")
    assert err["details"]["request_id"] == task_id
    conflict(client.post("/v1/tasks", json={**body, "input": {"image": b64(grey_png())}}), "one")
    conflict(client.post("/v1/tasks", json={**body, "operation": "crop"}), "one")
    conflict(client.post("/v1/tasks", json={**body, "webhook": {"url": "https://h.test/x"}}), "one")
    assert task_ids(client).count(task_id) == 1


def test_the_same_image_under_one_key_is_the_same_request_however_it_is_sent(
    client: TestClient, astronaut: bytes
) -> None:
    """The hash is over the image's bytes: base64 in JSON and a multipart file agree."""
    first = client.post(
        "/v1/tasks",
        json={"operation": "detect", "input": {"image": b64(astronaut)}},
        headers={"Idempotency-Key": "two"},
    )
    assert first.status_code == 202
    multipart = client.post(
        "/v1/tasks",
        data={"operation": "detect"},
        files={"image": ("a.jpg", astronaut)},
        headers={"Idempotency-Key": "two"},
    )
    assert multipart.status_code == 200
    assert multipart.json()["request_id"] == first.json()["request_id"]
    other = client.post(
        "/v1/tasks",
        data={"operation": "detect"},
        files={"image": ("b.png", grey_png())},
        headers={"Idempotency-Key": "two"},
    )
    conflict(other, "two")


def test_a_batch_with_a_conflicting_key_queues_nothing(
    client: TestClient, astronaut: bytes
) -> None:
    def item(key: str, **extra: Any) -> dict[str, Any]:
        return {
            "operation": "detect",
            "input": {"image": b64(astronaut)},
            "idempotency_key": key,
            **extra,
        }

    made = client.post("/v1/tasks:batch", json=[item("b-1"), item("b-2")])
    assert made.status_code == 202, made.text
    ids = [t["request_id"] for t in made.json()["tasks"]]
    before = task_ids(client)
    bad = client.post(
        "/v1/tasks:batch", json=[item("b-1"), item("b-2", options={"max_faces": 1}), item("b-3")]
    )
    assert conflict(bad, "b-2")["details"]["item"] == 1
    same_key_twice = client.post(
        "/v1/tasks:batch", json=[item("b-4"), item("b-4", options={"max_faces": 1})]
    )
    assert conflict(same_key_twice, "b-4")["details"]["item"] == 1
    assert task_ids(client) == before  # neither b-3 nor b-4 was queued
    repeat = client.post("/v1/tasks:batch", json=[item("b-1"), item("b-2")])
    assert repeat.status_code == 202
    assert [t["request_id"] for t in repeat.json()["tasks"]] == ids


def test_ailab_async_tasks_refuse_a_reused_key_with_another_body_in_ailab_shape(
    client: TestClient, astronaut: bytes
) -> None:
    url = "/compat/ailab/api/common/async-task"
    headers = {"Idempotency-Key": "ailab-1"}
    files = {"image": ("a.jpg", astronaut)}
    first = client.post(url, data={"operation": "detect"}, files=files, headers=headers)
    assert first.status_code == 200 and first.json()["error_code"] == 0, first.text
    again = client.post(url, data={"operation": "detect"}, files=files, headers=headers)
    assert again.json()["task_id"] == first.json()["task_id"]
    other = client.post(
        url, data={"operation": "detect"}, files={"image": ("b.png", grey_png())}, headers=headers
    )
    assert other.status_code == 409, other.text
    assert other.json()["error_detail"]["code"] == "ERROR_TASK_CONFLICT"
