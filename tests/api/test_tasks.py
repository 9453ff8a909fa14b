"""The task API on the embedded executor: real worker processes, a real SQLite table."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from faceplane.app import create_app
from faceplane.settings import Settings


@contextmanager
def app_client(tmp_path: Path, **overrides: Any) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path / "data", **overrides)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with app_client(tmp_path_factory.mktemp("tasks"), workers=2) as c:
        yield c


@pytest.fixture(scope="module")
def idle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """No workers: tasks stay queued (for cancel and back-pressure)."""
    with app_client(
        tmp_path_factory.mktemp("idle"), workers=0, task_max_queue=3, batch_max_items=2
    ) as c:
        yield c


def b64(data: bytes) -> dict[str, str]:
    return {"base64": base64.b64encode(data).decode()}


def blank_png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (120, 120), (90, 100, 110)).save(buf, format="PNG")
    return buf.getvalue()


def submit(client: TestClient, **body: Any) -> dict[str, Any]:
    resp = client.post("/v1/tasks", json=body)
    assert resp.status_code == 202, resp.text
    return resp.json()


def wait(client: TestClient, task_id: str, seconds: float = 30) -> dict[str, Any]:
    resp = client.get(f"/v1/tasks/{task_id}", params={"wait_s": seconds})
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_detect_task_gives_the_same_answer_as_the_sync_route(
    client: TestClient, astronaut: bytes
) -> None:
    task = submit(client, operation="detect", input={"image": b64(astronaut)})
    assert task["status"] == "queued" and task["request_id"]
    done = wait(client, task["request_id"])
    assert done["status"] == "succeeded" and done["attempts"] == 1
    assert done["started_at"] and done["finished_at"]
    sync = client.post("/v1/detect", files={"image": ("a.jpg", astronaut)}).json()
    assert done["result"]["faces"] == sync["faces"]


def test_multipart_submission_works(client: TestClient, astronaut: bytes) -> None:
    resp = client.post(
        "/v1/tasks",
        data={"operation": "detect", "options": json.dumps({"landmarks": 68})},
        files={"image": ("a.jpg", astronaut)},
    )
    assert resp.status_code == 202
    done = wait(client, resp.json()["request_id"])
    assert len(done["result"]["faces"][0]["landmarks"]) == 68


def test_same_idempotency_key_returns_the_same_task(client: TestClient, astronaut: bytes) -> None:
    body = {"operation": "detect", "input": {"image": b64(astronaut)}, "idempotency_key": "k-1"}
    first = client.post("/v1/tasks", json=body)
    second = client.post("/v1/tasks", json=body)
    assert first.status_code == 202 and second.status_code == 200
    assert first.json()["request_id"] == second.json()["request_id"]
    listed = client.get("/v1/tasks", params={"limit": 100}).json()["tasks"]
    assert sum(t["request_id"] == first.json()["request_id"] for t in listed) == 1


def test_batch_gives_one_request_id_per_item(client: TestClient, astronaut: bytes) -> None:
    items = [{"operation": "detect", "input": {"image": b64(astronaut)}} for _ in range(3)]
    resp = client.post("/v1/tasks:batch", json={"items": items})
    assert resp.status_code == 202
    ids = [t["request_id"] for t in resp.json()["tasks"]]
    assert len(set(ids)) == 3
    assert all(wait(client, i)["status"] == "succeeded" for i in ids)


def test_batch_over_the_limit_is_refused(idle: TestClient, astronaut: bytes) -> None:
    items = [{"operation": "detect", "input": {"image": b64(astronaut)}} for _ in range(3)]
    resp = idle.post("/v1/tasks:batch", json=items)
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "BATCH_LIMIT_EXCEEDED"


def test_a_bad_batch_item_queues_nothing(client: TestClient, astronaut: bytes) -> None:
    before = len(client.get("/v1/tasks", params={"limit": 100}).json()["tasks"])
    items = [
        {"operation": "detect", "input": {"image": b64(astronaut)}},
        {"operation": "detect", "input": {"image": b64(astronaut)}, "options": {"max_faces": 0}},
    ]
    resp = client.post("/v1/tasks:batch", json=items)
    err = resp.json()["error"]
    assert err["code"] == "INVALID_ARGUMENT" and err["details"]["item"] == 1
    assert len(client.get("/v1/tasks", params={"limit": 100}).json()["tasks"]) == before


def test_unknown_task_is_task_not_found(client: TestClient) -> None:
    resp = client.get("/v1/tasks/nope")
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "TASK_NOT_FOUND"


def test_unknown_operation_and_missing_image_are_refused(client: TestClient) -> None:
    resp = client.post("/v1/tasks", json={"operation": "teleport"})
    assert resp.json()["error"]["code"] == "INVALID_ARGUMENT"
    resp = client.post("/v1/tasks", json={"operation": "detect"})
    assert resp.json()["error"]["code"] == "MISSING_ARGUMENT"


def test_failed_task_carries_a_catalogue_error(client: TestClient) -> None:
    task = submit(
        client, operation="compare", input={"image1": b64(blank_png()), "image2": b64(blank_png())}
    )
    done = wait(client, task["request_id"])
    assert done["status"] == "failed"
    assert done["error"]["code"] == "FACE_NOT_FOUND"
    broken = submit(client, operation="detect", input={"image": b64(b"not an image at all")})
    assert wait(client, broken["request_id"])["error"]["code"] == "IMAGE_CORRUPT"


def test_crop_results_are_served_under_signed_urls(client: TestClient, astronaut: bytes) -> None:
    task = submit(client, operation="crop", input={"image": b64(astronaut)}, options={"size": 112})
    done = wait(client, task["request_id"])
    assert done["status"] == "succeeded", done
    for field in ("result_url", "thumb1_url", "thumb2_url", "thumb_ini1_url", "thumb_ini2_url"):
        url = done[field]
        assert url.startswith("http://")
        path = url.split("://", 1)[1].split("/", 1)[1]
        resp = client.get("/" + path)
        assert resp.status_code == 200 and resp.headers["content-type"] == "image/jpeg"
    crop = Image.open(io.BytesIO(client.get("/" + done["result_url"].split("/", 3)[3]).content))
    assert crop.size == (112, 112)
    tampered = "/" + done["result_url"].split("/", 3)[3].replace("owner=default", "owner=other")
    assert client.get(tampered).json()["error"]["code"] == "SIGNATURE_INVALID"


def test_cancel_queued_then_again_then_finished(
    idle: TestClient, client: TestClient, astronaut: bytes
) -> None:
    task = submit(idle, operation="detect", input={"image": b64(astronaut)})
    resp = idle.delete(f"/v1/tasks/{task['request_id']}")
    assert resp.status_code == 200 and resp.json()["status"] == "canceled"
    again = idle.delete(f"/v1/tasks/{task['request_id']}")
    assert again.status_code == 409 and again.json()["error"]["code"] == "TASK_REVOKED"
    finished = submit(client, operation="detect", input={"image": b64(astronaut)})
    wait(client, finished["request_id"])
    resp = client.delete(f"/v1/tasks/{finished['request_id']}")
    assert resp.json()["error"]["code"] == "TASK_REVOCATION_FAILED"


def test_full_queue_answers_server_busy_and_keeps_accepted_tasks(
    tmp_path: Path, astronaut: bytes
) -> None:
    with app_client(tmp_path, workers=0, task_max_queue=2) as c:
        ids = [
            submit(c, operation="detect", input={"image": b64(astronaut)})["request_id"]
            for _ in range(2)
        ]
        resp = c.post("/v1/tasks", json={"operation": "detect", "input": {"image": b64(astronaut)}})
        assert resp.status_code == 503
        assert resp.json()["error"]["code"] == "SERVER_BUSY"
        assert int(resp.headers["retry-after"]) > 0
        assert all(c.get(f"/v1/tasks/{i}").json()["status"] == "queued" for i in ids)


def test_list_filters_by_status_and_paginates(client: TestClient, astronaut: bytes) -> None:
    for _ in range(3):
        wait(
            client,
            submit(client, operation="detect", input={"image": b64(astronaut)})["request_id"],
        )
    page = client.get("/v1/tasks", params={"status": "succeeded", "limit": 2}).json()
    assert len(page["tasks"]) == 2 and page["next_cursor"]
    assert all(t["status"] == "succeeded" for t in page["tasks"])
    nxt = client.get(
        "/v1/tasks", params={"status": "succeeded", "limit": 2, "cursor": page["next_cursor"]}
    ).json()
    first_ids = {t["request_id"] for t in page["tasks"]}
    assert nxt["tasks"] and not first_ids & {t["request_id"] for t in nxt["tasks"]}


def test_expired_task_answers_task_expired_and_its_files_are_gone(
    tmp_path: Path, astronaut: bytes
) -> None:
    with app_client(tmp_path, workers=1, task_ttl_s=1, maintenance_interval_s=0.2) as c:
        task = submit(c, operation="crop", input={"image": b64(astronaut)})
        assert wait(c, task["request_id"])["status"] == "succeeded"
        folder = tmp_path / "data" / "blobs" / "tasks" / task["request_id"]
        assert folder.exists()
        deadline = time.time() + 10
        while time.time() < deadline and folder.exists():
            time.sleep(0.2)
        resp = c.get(f"/v1/tasks/{task['request_id']}")
        assert resp.status_code == 410 and resp.json()["error"]["code"] == "TASK_EXPIRED"
        assert not folder.exists()


class Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[dict[str, str], bytes]]] = []
    fail_first = 0

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        cls = type(self)
        cls.received.append((dict(self.headers), body))
        ok = len(cls.received) > cls.fail_first
        self.send_response(200 if ok else 500)
        self.end_headers()


@pytest.fixture
def receiver() -> Iterator[str]:
    Receiver.received = []
    Receiver.fail_first = 1
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/hook"
    httpd.shutdown()


def test_webhook_is_signed_retried_and_recorded(
    tmp_path: Path, astronaut: bytes, receiver: str
) -> None:
    with app_client(
        tmp_path,
        workers=1,
        fetch_allow_private=True,
        webhook_backoff_s=0.2,
        maintenance_interval_s=0.1,
    ) as c:
        task = submit(
            c,
            operation="detect",
            input={"image": b64(astronaut)},
            webhook={"url": receiver, "secret": "s3cret"},
        )
        deadline = time.time() + 15
        while time.time() < deadline and len(Receiver.received) < 2:
            time.sleep(0.1)
        assert len(Receiver.received) == 2  # the first answered 500 and was retried
        headers, body = Receiver.received[-1]
        expected = hmac.new(
            b"s3cret", f"{headers['X-Faceplane-Timestamp']}.".encode() + body, hashlib.sha256
        ).hexdigest()
        assert headers["X-Faceplane-Signature"] == f"v1={expected}"
        payload = json.loads(body)
        assert payload["request_id"] == task["request_id"] and payload["status"] == "succeeded"
        time.sleep(0.3)
        state = c.get(f"/v1/tasks/{task['request_id']}").json()
        assert state["webhook"]["state"] == "delivered"
        assert [d["http_status"] for d in state["webhook"]["deliveries"]] == [500, 200]


def test_dead_webhook_never_changes_the_outcome(tmp_path: Path, astronaut: bytes) -> None:
    with app_client(
        tmp_path,
        workers=1,
        fetch_allow_private=True,
        webhook_backoff_s=0.1,
        webhook_max_attempts=2,
        maintenance_interval_s=0.1,
    ) as c:
        task = submit(
            c,
            operation="detect",
            input={"image": b64(astronaut)},
            webhook={"url": "http://127.0.0.1:9/nobody-listens"},
        )
        assert "secret" in task["webhook"]  # generated, shown once
        deadline = time.time() + 10
        state: dict[str, Any] = {}
        while time.time() < deadline:
            state = c.get(f"/v1/tasks/{task['request_id']}").json()
            if state.get("webhook", {}).get("state") == "failed":
                break
            time.sleep(0.1)
        assert state["status"] == "succeeded"
        assert state["webhook"]["state"] == "failed"
        assert len(state["webhook"]["deliveries"]) == 2
        assert all(d["error"] for d in state["webhook"]["deliveries"])


def test_webhook_to_a_private_address_is_refused_at_submission(
    client: TestClient, astronaut: bytes
) -> None:
    resp = client.post(
        "/v1/tasks",
        json={
            "operation": "detect",
            "input": {"image": b64(astronaut)},
            "webhook": {"url": "http://169.254.169.254/x"},
        },
    )
    assert resp.json()["error"]["code"] == "URL_FORBIDDEN"
