"""The task API in both executors: embedded (local worker processes on SQLite) and
distributed (`faceplane worker` Celery processes over Redis, state in PostgreSQL).

Every test runs in both modes (the worker kill -9 test only in the distributed one, the
embedded one has tests/e2e/test_durability.py). The distributed cases need PostgreSQL and
Redis at 127.0.0.1; when either does not answer they skip with a reason saying so.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import io
import itertools
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from faceplane.settings import Settings
from support import authed_client

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432"
# Its own Redis database: test queues (and messages a killed worker left unacked) stay out of
# database 0, where a real deployment on this machine would live.
REDIS_URL = "redis://127.0.0.1:6379/15"


def distributed_unavailable() -> str | None:
    """Why the distributed mode cannot be tested here, or None when it can."""
    import redis
    from sqlalchemy import create_engine, text

    engine = create_engine(f"{PG_URL}/postgres", connect_args={"connect_timeout": 2})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        return f"PostgreSQL at 127.0.0.1:5432 does not answer ({type(exc).__name__})"
    finally:
        engine.dispose()
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except Exception as exc:
        return f"Redis at 127.0.0.1:6379 does not answer ({type(exc).__name__})"
    return None


class Worker:
    """`faceplane worker` in a subprocess (its own process group), with the server's settings."""

    def __init__(self, settings: Settings, concurrency: int, log: Path) -> None:
        env = {
            f"FACEPLANE_{k.upper()}": str(v)
            for k, v in settings.model_dump(mode="json").items()
            if v is not None
        }
        self.env = {**os.environ, **env}
        self.concurrency = concurrency
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Worker:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "faceplane.cli", "worker", "-c", str(self.concurrency)],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.time() + 60
        while time.time() < deadline:
            if b" ready." in self.log.read_bytes():
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        tail = self.log.read_text(errors="replace")[-3000:]
        self.stop()
        raise RuntimeError(f"`faceplane worker` did not start:\n{tail}")

    def kill9(self) -> None:
        """The machine dies: SIGKILL to the worker and its pool processes at once."""
        assert self.proc
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()  # warm shutdown: the running task finishes
            with suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=20)
        with suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # no pool process outlives the test
        self.proc.wait()


@dataclass
class Backend:
    """Where the tasks of one test module live: SQLite per app, or one PostgreSQL database."""

    mode: str
    database_url: str = ""
    run: str = dataclasses.field(default_factory=lambda: secrets.token_hex(4))
    _apps: Iterator[int] = dataclasses.field(default_factory=itertools.count)

    def settings(self, tmp_path: Path, **overrides: Any) -> Settings:
        """Settings of one app; in celery mode its own schema and its own Celery queue."""
        if self.mode == "local":
            return Settings(data_dir=tmp_path / "data", **overrides)
        from sqlalchemy import create_engine, text

        n = next(self._apps)
        schema = f"app_{n}"
        engine = create_engine(self.database_url)
        with engine.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        engine.dispose()
        return Settings(
            data_dir=tmp_path / "data",
            executor="celery",
            database_url=f"{self.database_url}?options=-csearch_path%3D{schema}",
            broker_url=REDIS_URL,
            # The trailing "-q" keeps queue 1's key prefix from matching queue 10's.
            celery_queue=f"faceplane-test-{self.run}-{n}-q",
            **overrides,
        )


def _drop_queue(queue: str) -> None:
    """Delete a test queue's Redis keys, and the messages a killed worker left unacked."""
    import redis

    r = redis.Redis.from_url(REDIS_URL)
    bindings = [f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}"]
    keys = [*r.scan_iter(match=f"{queue}*"), *bindings]
    r.delete(*keys)
    for tag, payload in r.hscan_iter("unacked"):
        if queue.encode() in payload:
            r.hdel("unacked", tag)
            r.zrem("unacked_index", tag)


@pytest.fixture(scope="module", params=["local", "celery"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    if request.param == "local":
        yield Backend("local")
        return
    reason = distributed_unavailable()
    if reason:
        pytest.skip(f"DISTRIBUTED MODE NOT TESTED: {reason}")
    from sqlalchemy import create_engine, text

    name = f"faceplane_test_{secrets.token_hex(6)}"
    admin = create_engine(f"{PG_URL}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield Backend("celery", database_url=f"{PG_URL}/{name}")
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def app_client(backend: Backend, tmp_path: Path, **overrides: Any) -> Iterator[TestClient]:
    """A server; in celery mode also a `faceplane worker` with `workers` processes (none: 0)."""
    settings = backend.settings(tmp_path, **overrides)
    worker = None
    try:
        with authed_client(settings) as client:
            if backend.mode == "celery" and settings.workers:
                worker = Worker(settings, settings.workers, tmp_path / "worker.log").start()
            yield client
    finally:
        if worker:
            worker.stop()
        if backend.mode == "celery":
            _drop_queue(settings.celery_queue)


@pytest.fixture(scope="module")
def client(backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with app_client(backend, tmp_path_factory.mktemp("tasks"), workers=2) as c:
        yield c


@pytest.fixture(scope="module")
def idle(backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """No workers: tasks stay queued (for cancel and back-pressure)."""
    with app_client(
        backend, tmp_path_factory.mktemp("idle"), workers=0, task_max_queue=3, batch_max_items=2
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


def test_multipart_submission_works(research_client: TestClient, astronaut: bytes) -> None:
    client = research_client
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


def test_a_task_nobody_was_told_about_still_runs(client: TestClient, astronaut: bytes) -> None:
    """The server stopped between the insert and the publish: the table is the truth."""
    from faceplane.services.images import ImageSource
    from faceplane.services.tasks import TaskSpec, submit_task

    app: Any = client.app
    spec = TaskSpec("detect", {"image": ImageSource("image", data=astronaut)}, {})
    company_id = client.get("/v1/me").json()["company_id"]
    task, _ = submit_task(app.state.rt, company_id, spec)  # no notify
    assert wait(client, task["request_id"], seconds=20)["status"] == "succeeded"


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
    tampered = "/" + re.sub(
        r"company_id=\w+", "company_id=other", done["result_url"].split("/", 3)[3]
    )
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
    backend: Backend, tmp_path: Path, astronaut: bytes
) -> None:
    with app_client(backend, tmp_path, workers=0, task_max_queue=2) as c:
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
    backend: Backend, tmp_path: Path, astronaut: bytes
) -> None:
    from sqlalchemy import update

    from faceplane.store.db import tasks, write_tx

    with app_client(backend, tmp_path, workers=1, maintenance_interval_s=0.2) as c:
        task = submit(c, operation="crop", input={"image": b64(astronaut)})
        assert wait(c, task["request_id"])["status"] == "succeeded"
        folder = tmp_path / "data" / "blobs" / "tasks" / task["request_id"]
        assert folder.exists()
        # Its TTL runs out now (a 1 s TTL raced the first task's model loading on a busy
        # machine: the task could expire before the client ever saw it finish).
        store = c.app.state.rt.store  # type: ignore[attr-defined]
        with write_tx(store.db) as conn:
            conn.execute(
                update(tasks)
                .where(tasks.c.id == task["request_id"])
                .values(expires_at=time.time() - 1)
            )
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
    backend: Backend, tmp_path: Path, astronaut: bytes, receiver: str
) -> None:
    with app_client(
        backend,
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
            webhook={"url": receiver, "secret": "s3cret-of-16-bytes"},
        )
        deadline = time.time() + 15
        while time.time() < deadline and len(Receiver.received) < 2:
            time.sleep(0.1)
        assert len(Receiver.received) == 2  # the first answered 500 and was retried
        headers, body = Receiver.received[-1]
        expected = hmac.new(
            b"s3cret-of-16-bytes",
            f"{headers['X-Faceplane-Timestamp']}.".encode() + body,
            hashlib.sha256,
        ).hexdigest()
        assert headers["X-Faceplane-Signature"] == f"v1={expected}"
        payload = json.loads(body)
        assert payload["request_id"] == task["request_id"] and payload["status"] == "succeeded"
        time.sleep(0.3)
        state = c.get(f"/v1/tasks/{task['request_id']}").json()
        assert state["webhook"]["state"] == "delivered"
        assert [d["http_status"] for d in state["webhook"]["deliveries"]] == [500, 200]


def test_dead_webhook_never_changes_the_outcome(
    backend: Backend, tmp_path: Path, astronaut: bytes
) -> None:
    with app_client(
        backend,
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


class SlowImage(BaseHTTPRequestHandler):
    """Serves one JPEG after a delay, so tasks are surely running when the worker dies."""

    image = b""
    delay_s = 1.0

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        time.sleep(self.delay_s)
        with suppress(OSError):  # the worker that asked may be dead by now
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(self.image)))
            self.end_headers()
            self.wfile.write(self.image)


@pytest.mark.parametrize("backend", ["celery"], indirect=True)
def test_killed_worker_loses_no_task(backend: Backend, tmp_path: Path, astronaut: bytes) -> None:
    """kill -9 of a worker mid-batch: a new worker finishes every task, the killed ones twice."""
    SlowImage.image = astronaut
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), SlowImage)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/astronaut.jpg"
    settings = backend.settings(
        tmp_path, workers=0, task_lease_s=3, maintenance_interval_s=0.2, fetch_allow_private=True
    )
    first = Worker(settings, 2, tmp_path / "worker1.log")
    second = Worker(settings, 2, tmp_path / "worker2.log")
    try:
        with authed_client(settings) as c:
            first.start()
            items = [{"operation": "detect", "input": {"image": {"url": url}}} for _ in range(6)]
            resp = c.post("/v1/tasks:batch", json={"items": items})
            assert resp.status_code == 202, resp.text
            ids = [t["request_id"] for t in resp.json()["tasks"]]
            running: list[str] = []
            deadline = time.time() + 20
            while time.time() < deadline and len(running) < 2:
                listed = c.get("/v1/tasks", params={"status": "running"}).json()["tasks"]
                running = [t["request_id"] for t in listed]
                time.sleep(0.05)
            assert len(running) == 2, "both pool processes should be fetching"
            first.kill9()
            second.start()
            final = {i: wait(c, i, seconds=40) for i in ids}
            assert {i: t["status"] for i, t in final.items()} == {i: "succeeded" for i in ids}
            assert all(len(t["result"]["faces"]) == 1 for t in final.values())
            # The killed tasks ran again (lease expiry, then republished); the rest ran once.
            assert {i: final[i]["attempts"] for i in running} == {i: 2 for i in running}
            assert all(final[i]["attempts"] == 1 for i in ids if i not in running)
    finally:
        first.stop()
        second.stop()
        httpd.shutdown()
        _drop_queue(settings.celery_queue)
