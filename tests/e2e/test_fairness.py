"""Fairness on a real server: one tenant's backlog fills its own share of the task queue, never
the whole queue, so another tenant's submit is still accepted."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from live import Server
from support import cli_app_key

QUEUE, SHARE = 6, 3


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    # No workers: every accepted task stays queued, a backlog that does not drain.
    srv = Server(
        tmp_path / "data",
        FACEPLANE_WORKERS="0",
        FACEPLANE_TASK_MAX_QUEUE=str(QUEUE),
        FACEPLANE_TASK_MAX_QUEUE_PER_COMPANY=str(SHARE),
    )
    srv.start()
    yield srv
    srv.stop()


def submit(server: Server, headers: dict[str, str], photo: str) -> httpx.Response:
    task = {"operation": "detect", "input": {"image": {"base64": photo}}}
    return httpx.post(server.base + "/v1/tasks", json=task, headers=headers, timeout=30)


def test_a_tenant_at_its_queue_cap_does_not_refuse_another_tenant(
    server: Server, testdata: Path
) -> None:
    photo = base64.b64encode((testdata / "faces/insightface/t1.jpg").read_bytes()).decode()
    busy = server.headers
    idle = {"X-API-Key": cli_app_key(server.env, "idle", 100_000)}
    answers = [submit(server, busy, photo) for _ in range(SHARE + 2)]
    assert [a.status_code for a in answers] == [202] * SHARE + [429, 429]
    refused = answers[-1]
    assert refused.json()["error"]["code"] == "RATE_LIMIT_EXCEEDED"
    assert refused.json()["error"]["details"]["max_queue_per_company"] == SHARE
    assert int(refused.headers["retry-after"]) > 0
    # The busy tenant's backlog took its share only: the idle tenant is accepted.
    accepted = [submit(server, idle, photo) for _ in range(QUEUE - SHARE)]
    assert [a.status_code for a in accepted] == [202] * (QUEUE - SHARE)
    # Now the whole queue is full: everyone waits, with the server's own answer.
    full = submit(server, idle, photo)
    assert full.status_code == 503 and full.json()["error"]["code"] == "SERVER_BUSY"
    # A canceled task frees its place in its tenant's share.
    first = answers[0].json()["request_id"]
    gone = httpx.delete(f"{server.base}/v1/tasks/{first}", headers=busy, timeout=10)
    assert gone.status_code == 200 and gone.json()["status"] == "canceled"
    assert submit(server, busy, photo).status_code == 202
