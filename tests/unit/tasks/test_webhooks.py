"""Webhook delivery, called directly against a real local HTTP endpoint: signed, retried with
backoff, recorded per attempt, given up after the last attempt, and never touching status."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from sqlalchemy import select

from faceplane.errors import Err, FaceplaneError
from faceplane.runtime import Runtime
from faceplane.settings import Settings
from faceplane.store import Store
from faceplane.store.db import tasks, webhook_attempts, write_tx
from faceplane.tasks.hub import TaskHub
from faceplane.tasks.webhooks import (
    Claim,
    check_secret,
    claim_due,
    deliver_claim,
    deliver_due,
    hold_s,
    sign_payload,
)
from live import wait_until
from webhook_peers import MIB, Peers, webhook_peers


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


def due_task(
    put_task: Callable[..., str], url: str, secret: str = "s3cret", at: float | None = None
) -> str:
    return put_task(
        "succeeded",
        webhook_url=url,
        webhook_secret=secret,
        webhook_state="pending",
        webhook_next_at=time.time() - 1 if at is None else at,
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


# ---- hostile endpoints: a huge answer, trickled headers, a trickled body ------------------------


@pytest.fixture
def peers() -> Iterator[Peers]:
    with webhook_peers(huge_bytes=200 * MIB, trickle_s=10, step_s=0.2) as p:
        yield p


@pytest.fixture
def quick(tmp_path: Path) -> Iterator[Runtime]:
    """A runtime whose deliveries have a 1 s deadline."""
    runtime = Runtime.open(
        Settings(
            data_dir=tmp_path,
            workers=0,
            fetch_allow_private=True,
            webhook_timeout_s=1.0,
            webhook_backoff_s=0.2,
            webhook_max_attempts=3,
        )
    )
    yield runtime
    runtime.close()


def test_a_huge_answer_is_read_no_further_than_a_few_kilobytes(
    rt: Runtime, peers: Peers, put_task: Callable[..., str], task_row: Callable[[str], Any]
) -> None:
    task_id = due_task(put_task, peers.url("/huge"))
    assert deliver_due(rt, render) == 1
    (a,) = attempts(rt.store, task_id)
    assert a["http_status"] == 200 and a["error"] is None
    assert task_row(task_id)["webhook_state"] == "delivered"
    (got,) = peers.to("/huge")
    assert wait_until(lambda: got.ended_at is not None, 10)
    # The connection was dropped: what the endpoint managed to write sat in socket buffers.
    assert got.sent_bytes < 64 * MIB, f"{got.sent_bytes / MIB:.0f} MiB were taken in"


@pytest.mark.parametrize("path", ["/trickle-headers", "/trickle-body"])
def test_a_trickling_endpoint_is_cut_at_the_deadline_as_a_failed_attempt(
    quick: Runtime,
    peers: Peers,
    path: str,
    put_task: Callable[..., str],
    task_row: Callable[[str], Any],
) -> None:
    task_id = due_task(put_task, peers.url(path))
    assert deliver_due(quick, render) == 1
    (a,) = attempts(quick.store, task_id)
    assert a["error"].startswith("TIMEOUT"), a
    assert 900 <= a["duration_ms"] < 4000  # the 1 s deadline, not the 10 s trickle
    row = task_row(task_id)
    assert row["webhook_state"] == "pending" and row["webhook_attempt"] == 1  # retried later


def test_a_delivery_is_claimed_by_exactly_one_of_concurrent_claimants(
    database_url: str, tmp_path: Path
) -> None:
    runtime = Runtime.open(Settings(data_dir=tmp_path, database_url=database_url, workers=0))
    now = time.time()
    ids = [f"{i:032x}" for i in range(12)]
    rows = [
        {
            "id": task_id,
            "company_id": f"c{i}",
            "operation": "detect",
            "status": "succeeded",
            "input_json": "{}",
            "created_at": now,
            "updated_at": now,
            "expires_at": now + 3600,
            "webhook_url": "http://127.0.0.1:9/hook",
            "webhook_secret": "s" * 16,
            "webhook_state": "pending",
            "webhook_next_at": now - 1,
        }
        for i, task_id in enumerate(ids)
    ]
    try:
        with write_tx(runtime.store.db) as conn:
            conn.execute(webhook_attempts.delete())
            conn.execute(tasks.delete())
            conn.execute(tasks.insert(), rows)
        start = threading.Barrier(4)
        claimed: list[Claim] = []

        def claimant() -> None:
            start.wait()
            for _ in range(4):
                claimed.extend(claim_due(runtime, 3))

        threads = [threading.Thread(target=claimant) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(c.row["id"] for c in claimed) == sorted(ids)  # each once, none lost
        assert {c.attempt for c in claimed} == {1}
        assert claim_due(runtime, 20) == []  # all held
    finally:
        with write_tx(runtime.store.db) as conn:
            conn.execute(tasks.delete())
        runtime.close()


def test_a_claim_after_a_crash_is_the_next_attempt_never_the_same_one_again(
    rt: Runtime, endpoint: str, put_task: Callable[..., str]
) -> None:
    task_id = due_task(put_task, endpoint)
    (first,) = claim_due(rt, 5)  # ... and the server dies before it sends anything
    assert first.attempt == 1
    assert claim_due(rt, 5) == []  # held for the deadline and a margin
    (second,) = claim_due(rt, 5, now=first.hold_until + 1)  # the hold ran out
    assert second.attempt == 2
    deliver_claim(rt, second, render)
    assert [h["X-Faceplane-Delivery-Attempt"] for h, _ in Endpoint.received] == ["2"]
    assert [a["attempt"] for a in attempts(rt.store, task_id)] == [2]


def test_a_late_outcome_of_an_older_claim_leaves_the_newer_claims_state_alone(
    rt: Runtime, endpoint: str, put_task: Callable[..., str], task_row: Callable[[str], Any]
) -> None:
    Endpoint.fail_first = 1  # the older claim's POST answers 500, arriving last
    task_id = due_task(put_task, endpoint)
    (old,) = claim_due(rt, 5)
    (new,) = claim_due(rt, 5, now=old.hold_until + 1)
    Endpoint.fail_first = 0
    deliver_claim(rt, new, render)
    assert task_row(task_id)["webhook_state"] == "delivered"
    Endpoint.fail_first = 10
    deliver_claim(rt, old, render)
    assert task_row(task_id)["webhook_state"] == "delivered"  # not sent back to pending
    assert sorted(a["attempt"] for a in attempts(rt.store, task_id)) == [1, 2]


def test_a_claim_that_waited_past_its_hold_and_was_claimed_again_sends_nothing(
    rt: Runtime, endpoint: str, put_task: Callable[..., str]
) -> None:
    late = time.time() - hold_s(rt) - 10
    due_task(put_task, endpoint, at=late - 1)
    (stale,) = claim_due(rt, 5, now=late)  # its hold is already over
    (fresh,) = claim_due(rt, 5)
    deliver_claim(rt, stale, render)
    assert Endpoint.received == []
    deliver_claim(rt, fresh, render)
    assert [h["X-Faceplane-Delivery-Attempt"] for h, _ in Endpoint.received] == ["2"]


def test_a_last_attempt_claimed_and_never_recorded_fails_the_delivery(
    rt: Runtime, put_task: Callable[..., str], task_row: Callable[[str], Any]
) -> None:
    task_id = due_task(put_task, "http://127.0.0.1:9/hook")
    for _ in range(3):  # webhook_max_attempts: each claimed, none recorded (crashes)
        (claim,) = claim_due(rt, 5, now=time.time() + 10_000 * (_ + 1))
    assert claim.attempt == 3
    assert claim_due(rt, 5, now=time.time() + 50_000) == []
    assert task_row(task_id)["webhook_state"] == "failed"


def test_a_webhook_secret_under_16_bytes_is_an_invalid_argument() -> None:
    for short in ("x", "s3cret", "é" * 7):  # 14 bytes
        with pytest.raises(FaceplaneError) as info:
            check_secret(short)
        assert info.value.err is Err.INVALID_ARGUMENT
        assert info.value.details["field"] == "webhook_secret"
    for bad in ("\ud800" * 16, 12345678901234567, "k" * 129):
        with pytest.raises(FaceplaneError):
            check_secret(bad)
    check_secret("é" * 8)  # 16 bytes
    check_secret("0123456789abcdef")
    check_secret(None)


# ---- the hub: deliveries off the maintenance loop, bounded -------------------------------------


def hub_runtime(tmp_path: Path, **settings: Any) -> Runtime:
    return Runtime.open(
        Settings(
            data_dir=tmp_path,
            workers=0,
            fetch_allow_private=True,
            maintenance_interval_s=0.05,
            webhook_backoff_s=30,
            **settings,
        )
    )


def run_hub(runtime: Runtime, until: Callable[[], bool], seconds: float, peers: Peers) -> bool:
    """Run a TaskHub until `until()` holds (True) or `seconds` pass (False); then end the
    trickles (the hub's stop lets deliveries in flight end)."""

    async def main() -> bool:
        hub = TaskHub(runtime)
        await hub.start()
        try:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                if await runtime.run_io(until):
                    return True
                await asyncio.sleep(0.05)
            return False
        finally:
            peers.stop.set()
            await hub.stop()

    return asyncio.run(main())


def test_while_an_endpoint_trickles_other_webhooks_go_out_and_tasks_expire(
    tmp_path: Path, peers: Peers, put_task: Callable[..., str], task_row: Callable[[str], Any]
) -> None:
    runtime = hub_runtime(tmp_path, webhook_timeout_s=8)
    try:
        slow = due_task(put_task, peers.url("/trickle-headers"))
        healthy = put_task(
            "succeeded",
            company_id="c2",
            webhook_url=peers.url("/ok"),
            webhook_secret="s" * 16,
            webhook_state="pending",
            webhook_next_at=time.time(),  # due after the slow one
        )
        doomed = put_task("queued", expires_at=time.time() + 0.5)
        done = run_hub(
            runtime,
            lambda: bool(peers.to("/ok")) and bool(task_row(doomed)["purged"]),
            4,  # the trickle lasts 10 s, its deadline 8 s
            peers,
        )
        assert done, "the healthy webhook or the expiry waited for the trickling endpoint"
        (trickled,) = peers.to("/trickle-headers")
        assert trickled.task_id == slow
        assert peers.to("/ok")[0].task_id == healthy
        assert task_row(doomed)["status"] == "failed"
    finally:
        runtime.close()


def test_one_companys_slow_endpoints_hold_at_most_its_share_of_delivery_slots(
    tmp_path: Path, peers: Peers, put_task: Callable[..., str]
) -> None:
    runtime = hub_runtime(
        tmp_path,
        webhook_timeout_s=1.5,
        webhook_max_concurrent=3,
        webhook_max_concurrent_per_company=1,
    )
    try:
        for _ in range(3):
            due_task(put_task, peers.url("/trickle-body"))  # company c1
        for company in ("c2", "c3"):
            put_task(
                "succeeded",
                company_id=company,
                webhook_url=peers.url("/ok"),
                webhook_secret="s" * 16,
                webhook_state="pending",
                webhook_next_at=time.time(),
            )
        assert run_hub(runtime, lambda: len(peers.to("/trickle-body")) == 3, 10, peers)
        assert {r.task_id for r in peers.to("/ok")} and len(peers.to("/ok")) == 2
        slow = sorted(peers.to("/trickle-body"), key=lambda r: r.at)
        # One at a time: each began once the one before it had been cut at its 1.5 s deadline.
        # (Start times only: the peer sees a cut connection at its next trickled byte, late.)
        for before, after in itertools.pairwise(slow):
            assert after.at - before.at >= 1.5 * 0.8
    finally:
        runtime.close()
