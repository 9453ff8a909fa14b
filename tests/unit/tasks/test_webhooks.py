"""Webhook delivery, called directly against a real local HTTP endpoint: signed, retried with
backoff, recorded per attempt, given up after the last attempt, and never touching status."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from sqlalchemy import select

from faceplane.runtime import Runtime
from faceplane.settings import Settings
from faceplane.store import Store
from faceplane.store.db import webhook_attempts
from faceplane.tasks.webhooks import deliver_due, sign_payload


class Endpoint(BaseHTTPRequestHandler):
    """Answers 500 to the first `fail_first` deliveries, then 204."""

    received: ClassVar[list[tuple[dict[str, str], bytes]]] = []
    fail_first: ClassVar[int] = 0

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((dict(self.headers), body))
        self.send_response(500 if len(type(self).received) <= type(self).fail_first else 204)
        self.end_headers()


@pytest.fixture
def endpoint() -> Iterator[str]:
    Endpoint.received = []
    Endpoint.fail_first = 0
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Endpoint)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/hook"
    httpd.shutdown()


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[Runtime]:
    runtime = Runtime.open(
        Settings(
            data_dir=tmp_path,
            workers=0,
            fetch_allow_private=True,
            webhook_backoff_s=0.2,
            webhook_max_attempts=3,
        )
    )
    yield runtime
    runtime.close()


@pytest.fixture
def store(rt: Runtime) -> Store:
    return rt.store


def render(row: dict[str, Any]) -> dict[str, Any]:
    return {"request_id": row["id"], "status": row["status"]}


def attempts(store: Store, task_id: str) -> list[dict[str, Any]]:
    with store.db.connect() as conn:
        rows = conn.execute(
            select(webhook_attempts)
            .where(webhook_attempts.c.task_id == task_id)
            .order_by(webhook_attempts.c.attempt)
        )
        return [dict(r) for r in rows.mappings()]


def due_task(put_task: Callable[..., str], url: str, secret: str = "s3cret") -> str:
    return put_task(
        "succeeded",
        webhook_url=url,
        webhook_secret=secret,
        webhook_state="pending",
        webhook_next_at=time.time() - 1,
    )


def test_the_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    expected = hmac.new(b"k", b"1700000000.{}", hashlib.sha256).hexdigest()
    assert sign_payload("k", 1700000000, b"{}") == expected


def test_a_due_delivery_is_posted_signed_and_recorded(
    rt: Runtime,
    endpoint: str,
    put_task: Callable[..., str],
    task_row: Callable[[str], dict[str, Any]],
) -> None:
    task_id = due_task(put_task, endpoint)
    assert deliver_due(rt, render) == 1
    (headers, body) = Endpoint.received[0]
    assert json.loads(body) == {"request_id": task_id, "status": "succeeded"}
    assert headers["X-Faceplane-Event"] == "task.finished"
    assert headers["X-Faceplane-Task-Id"] == task_id
    assert headers["X-Faceplane-Delivery-Attempt"] == "1"
    ts = int(headers["X-Faceplane-Timestamp"])
    assert headers["X-Faceplane-Signature"] == "v1=" + sign_payload("s3cret", ts, body)
    row = task_row(task_id)
    assert row["webhook_state"] == "delivered" and row["webhook_next_at"] is None
    assert row["status"] == "succeeded"
    (a,) = attempts(rt.store, task_id)
    assert a["http_status"] == 204 and a["error"] is None
    assert deliver_due(rt, render) == 0  # delivered: never again


def test_a_failing_endpoint_is_retried_with_backoff_then_given_up(
    rt: Runtime,
    endpoint: str,
    put_task: Callable[..., str],
    task_row: Callable[[str], dict[str, Any]],
) -> None:
    Endpoint.fail_first = 10
    task_id = due_task(put_task, endpoint)
    assert deliver_due(rt, render) == 1
    first = task_row(task_id)
    assert first["webhook_state"] == "pending" and first["webhook_next_at"] > time.time()
    assert deliver_due(rt, render) == 0  # not due yet: the backoff holds
    for wait_s in (0.3, 0.6):  # 0.2 s, then 0.4 s
        time.sleep(wait_s)
        assert deliver_due(rt, render) == 1
    row = task_row(task_id)
    assert row["webhook_state"] == "failed" and row["status"] == "succeeded"
    assert [a["error"] for a in attempts(rt.store, task_id)] == ["HTTP 500"] * 3
    assert [h["X-Faceplane-Delivery-Attempt"] for h, _ in Endpoint.received] == ["1", "2", "3"]


def test_a_dead_endpoint_is_recorded_as_a_network_error(
    rt: Runtime, put_task: Callable[..., str], task_row: Callable[[str], dict[str, Any]]
) -> None:
    task_id = due_task(put_task, "http://127.0.0.1:9/hook")  # nothing listens on port 9
    assert deliver_due(rt, render) == 1
    (a,) = attempts(rt.store, task_id)
    assert a["http_status"] is None and "Error" in a["error"]
    assert task_row(task_id)["webhook_state"] == "pending"


def test_a_private_target_is_refused_when_private_addresses_are_not_allowed(
    tmp_path: Path, put_task: Callable[..., str], task_row: Callable[[str], dict[str, Any]]
) -> None:
    strict = Runtime.open(Settings(data_dir=tmp_path, workers=0, webhook_max_attempts=1))
    try:
        task_id = due_task(put_task, "http://127.0.0.1:9/hook")
        assert deliver_due(strict, render) == 1
        (a,) = attempts(strict.store, task_id)
        assert a["error"].startswith("URL_FORBIDDEN")
        assert task_row(task_id)["webhook_state"] == "failed"
    finally:
        strict.close()
