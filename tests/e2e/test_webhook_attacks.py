"""Hostile webhook endpoints against a real server (`faceplane serve` in a subprocess).

A 200 MB answer, a trickle of header bytes and a trickle of body bytes, served from
127.0.0.1 by the test: the server's memory stays bounded, a delivery ends at its deadline as a
failed attempt, no attempt is sent or recorded twice, and while one endpoint trickles another
task's webhook is delivered and an expired task expires on schedule.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from live import Server, wait_until
from webhook_peers import MIB, Peers, webhook_peers

SECRET = "0123456789abcdef0123"


def memory_mb(pid: int, key: str) -> float:
    """VmRSS or VmHWM (the peak) of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {key} for {pid}")


def submit(server: Server, hook: str | None = None) -> str:
    """A detect task (its image URL answers nothing: the worker fails it at once)."""
    body: dict[str, Any] = {
        "operation": "detect",
        "input": {"image": {"url": "http://127.0.0.1:1/none.jpg"}},
    }
    if hook:
        body["webhook"] = {"url": hook, "secret": SECRET}
    resp = httpx.post(server.base + "/v1/tasks", json=body, headers=server.headers, timeout=30)
    assert resp.status_code == 202, resp.text
    return str(resp.json()["request_id"])


def cancel(server: Server, task_id: str) -> None:
    """Cancel a queued task: it finishes, and its webhook is due."""
    url = f"{server.base}/v1/tasks/{task_id}"
    httpx.delete(url, headers=server.headers, timeout=30).raise_for_status()


def task(server: Server, task_id: str) -> httpx.Response:
    return httpx.get(f"{server.base}/v1/tasks/{task_id}", headers=server.headers, timeout=30)


def deliveries(server: Server, task_id: str) -> list[dict[str, Any]]:
    return list(task(server, task_id).json().get("webhook", {}).get("deliveries", []))


@pytest.fixture
def peers() -> Iterator[Peers]:
    with webhook_peers(huge_bytes=200 * MIB, trickle_s=20, step_s=0.5) as p:
        yield p


def test_a_huge_webhook_answer_leaves_the_servers_memory_bounded(
    tmp_path: Path, peers: Peers
) -> None:
    server = Server(
        tmp_path / "data",
        FACEPLANE_WORKERS="0",
        FACEPLANE_FETCH_ALLOW_PRIVATE="true",
        FACEPLANE_WEBHOOK_TIMEOUT_S="20",
    )
    try:
        server.start()
        assert server.proc
        task_id = submit(server, peers.url("/huge"))
        before = memory_mb(server.proc.pid, "VmHWM")
        cancel(server, task_id)
        assert wait_until(lambda: deliveries(server, task_id), 25)
        (d,) = deliveries(server, task_id)
        peak = memory_mb(server.proc.pid, "VmHWM")
        assert d["http_status"] == 200 and d["error"] is None
        assert peak - before < 60, f"the peak grew from {before:.0f} MB to {peak:.0f} MB"
        (got,) = peers.to("/huge")
        assert got.sent_bytes < 64 * MIB  # the rest was never taken from the connection
    finally:
        server.stop()


def test_a_trickling_endpoint_is_cut_at_the_deadline_and_no_attempt_goes_out_twice(
    tmp_path: Path, peers: Peers
) -> None:
    server = Server(
        tmp_path / "data",
        FACEPLANE_FETCH_ALLOW_PRIVATE="true",
        FACEPLANE_WEBHOOK_TIMEOUT_S="1",
        FACEPLANE_WEBHOOK_BACKOFF_S="0.5",
        FACEPLANE_WEBHOOK_MAX_ATTEMPTS="3",
    )
    try:
        server.start()
        slow = [submit(server, peers.url(p)) for p in ("/trickle-headers", "/trickle-body")]
        assert wait_until(lambda: len(peers.received) >= 2, 20)
        # A task finishing later makes the server claim what is due again: before the fix the
        # trickling deliveries were still in flight past their hold, and went out again as
        # attempt 1.
        time.sleep(6.5)
        other = submit(server, peers.url("/ok"))
        assert wait_until(lambda: peers.to("/ok"), 10)

        def finished() -> bool:
            return all(task(server, t).json()["webhook"]["state"] == "failed" for t in slow)

        assert wait_until(finished, 10)
        for task_id in slow:
            got = deliveries(server, task_id)
            assert [d["attempt"] for d in got] == [1, 2, 3]
            assert all(d["error"].startswith("TIMEOUT") for d in got), got
            assert all(d["duration_ms"] < 4000 for d in got), got  # the 1 s deadline
        sent = [(r.task_id, r.attempt) for r in peers.received]
        assert len(sent) == len(set(sent)), sent
        assert task(server, other).json()["webhook"]["state"] == "delivered"
    finally:
        server.stop()


def test_while_an_endpoint_trickles_other_webhooks_go_out_and_tasks_expire_on_schedule(
    tmp_path: Path, peers: Peers
) -> None:
    server = Server(
        tmp_path / "data",
        FACEPLANE_WORKERS="0",
        FACEPLANE_FETCH_ALLOW_PRIVATE="true",
        FACEPLANE_WEBHOOK_TIMEOUT_S="15",  # the trickle is still in flight throughout
        FACEPLANE_TASK_TTL_S="3",
    )
    try:
        server.start()
        slow = submit(server, peers.url("/trickle-headers"))
        doomed = submit(server)  # never run (no workers): it expires after 3 s
        started = time.time()
        cancel(server, slow)
        assert wait_until(lambda: peers.to("/trickle-headers"), 10)
        healthy = submit(server, peers.url("/ok"))
        cancel(server, healthy)
        assert wait_until(lambda: peers.to("/ok"), 5), "the healthy webhook waited"
        assert wait_until(lambda: task(server, doomed).status_code == 410, 8)
        expired_after = time.time() - started
        assert expired_after < 8, f"the 3 s task expired after {expired_after:.1f} s"
        (trickled,) = peers.to("/trickle-headers")
        assert trickled.ended_at is None  # still trickling all along
    finally:
        peers.stop.set()  # (a stopping server lets deliveries in flight end)
        server.stop()


def test_a_webhook_secret_under_16_bytes_is_refused_for_tasks_and_app_defaults(
    tmp_path: Path,
) -> None:
    server = Server(tmp_path / "data", FACEPLANE_WORKERS="0", FACEPLANE_FETCH_ALLOW_PRIVATE="true")
    try:
        server.start()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "faceplane.cli",
                "admin",
                "user",
                "create",
                "--company",
                "e2e",
                "--email",
                "boss@e2e.test",
                "--role",
                "admin",
                "--password",
                "long enough pw",
            ],
            env=server.env,
            check=True,
            capture_output=True,
        )
        base = server.base
        hook = "http://127.0.0.1:9/hook"
        item = {"operation": "detect", "input": {"image": {"url": "http://127.0.0.1:1/a.jpg"}}}
        refused = [
            httpx.post(base + "/v1/tasks", headers=server.headers, json={**item, "webhook": w})
            for w in ({"url": hook, "secret": "x"}, {"url": hook, "secret": "é" * 7})
        ]
        refused.append(
            httpx.post(
                base + "/v1/tasks",
                headers=server.headers,
                data={"operation": "detect", "webhook_url": hook, "webhook_secret": "short"},
                files={"image": ("a.jpg", b"\xff\xd8\xff", "image/jpeg")},
            )
        )
        refused.append(
            httpx.post(
                base + "/v1/tasks:batch",
                headers=server.headers,
                json=[{**item, "webhook": {"url": hook, "secret": "1"}}],
            )
        )
        token = httpx.post(
            base + "/v1/auth/login", json={"email": "boss@e2e.test", "password": "long enough pw"}
        ).json()["access_token"]
        admin = {"Authorization": f"Bearer {token}"}
        app_id = httpx.post(base + "/v1/apps", headers=admin, json={"name": "hooked"}).json()[
            "app_id"
        ]
        refused.append(
            httpx.patch(
                f"{base}/v1/apps/{app_id}",
                headers=admin,
                json={"webhook_url": hook, "webhook_secret": "x"},
            )
        )
        for resp in refused:
            assert resp.status_code == 400, resp.text
            error = resp.json()["error"]
            assert error["code"] == "INVALID_ARGUMENT", error
            assert "webhook_secret" in json.dumps(error), error
        accepted = httpx.post(
            base + "/v1/tasks",
            headers=server.headers,
            json={**item, "webhook": {"url": hook, "secret": "é" * 8}},  # 16 bytes
        )
        assert accepted.status_code == 202, accepted.text
        patched = httpx.patch(
            f"{base}/v1/apps/{app_id}",
            headers=admin,
            json={"webhook_url": hook, "webhook_secret": SECRET},
        )
        assert patched.status_code == 200, patched.text
    finally:
        server.stop()
