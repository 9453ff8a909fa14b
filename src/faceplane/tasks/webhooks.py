"""Webhooks: a signed POST of the task's JSON when it finishes, retried with backoff.

Signature: `X-Faceplane-Signature: v1=<hex>` where hex = HMAC-SHA256(secret,
"<X-Faceplane-Timestamp>." + raw body). A dead endpoint never changes a task's outcome:
deliveries are recorded beside the task, and only their own state moves.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
from sqlalchemy import and_, select, update

from faceplane.engine.fetch import check_url
from faceplane.errors import FaceplaneError
from faceplane.runtime import Runtime
from faceplane.store import Store
from faceplane.store.db import tasks, webhook_attempts, write_tx

log = logging.getLogger("faceplane.webhooks")


def sign_payload(secret: str, timestamp: int, body: bytes) -> str:
    """The v1 signature of a webhook body."""
    msg = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()


def _claim_due(store: Store, now: float, hold_s: float, limit: int = 20) -> list[dict[str, Any]]:
    """Pending deliveries that are due, pushed out by `hold_s` so no other server takes them."""
    due = and_(tasks.c.webhook_state == "pending", tasks.c.webhook_next_at <= now)
    with store.db.connect() as conn:
        # Most calls find nothing: look without taking the write lock the workers need.
        if conn.execute(select(tasks.c.id).where(due).limit(1)).first() is None:
            return []
    with write_tx(store.db) as conn:
        rows = (
            conn.execute(
                select(tasks)
                .where(and_(tasks.c.webhook_state == "pending", tasks.c.webhook_next_at <= now))
                .limit(limit)
            )
            .mappings()
            .all()
        )
        claimed = []
        for r in rows:
            got = conn.execute(
                update(tasks)
                .where(and_(tasks.c.id == r["id"], tasks.c.webhook_next_at == r["webhook_next_at"]))
                .values(webhook_next_at=now + hold_s)
            ).rowcount
            if got:
                claimed.append(dict(r))
    return claimed


def deliver_due(
    rt: Runtime,
    render: Callable[[dict[str, Any]], dict[str, Any]],
    client: httpx.Client | None = None,
) -> int:
    """Attempt every due delivery once; return how many were attempted."""
    store = rt.store
    s = rt.settings
    now = time.time()
    rows = _claim_due(store, now, s.webhook_timeout_s + 5)
    if not rows:
        return 0  # and no HTTP client (building one costs milliseconds of CPU)
    own = client is None
    client = client or httpx.Client(
        timeout=s.webhook_timeout_s, follow_redirects=False, trust_env=False
    )
    try:
        for row in rows:
            _deliver_one(rt, row, render(row), client)
    finally:
        if own:
            client.close()
    return len(rows)


def _deliver_one(
    rt: Runtime,
    row: dict[str, Any],
    payload: dict[str, Any],
    client: httpx.Client,
) -> None:
    store = rt.store
    s = rt.settings
    with store.db.connect() as conn:
        attempt = 1 + len(
            conn.execute(
                select(webhook_attempts.c.id).where(webhook_attempts.c.task_id == row["id"])
            ).all()
        )
    body = json.dumps(payload).encode()
    ts = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "faceplane-webhook/1",
        "X-Faceplane-Event": "task.finished",
        "X-Faceplane-Task-Id": row["id"],
        "X-Faceplane-Delivery-Attempt": str(attempt),
        "X-Faceplane-Timestamp": str(ts),
        "X-Faceplane-Signature": "v1=" + sign_payload(row["webhook_secret"] or "", ts, body),
    }
    started = time.perf_counter()
    status: int | None = None
    error: str | None = None
    try:
        check_url(row["webhook_url"], rt.fetch)  # the SSRF rules apply to targets too
        resp = client.post(row["webhook_url"], content=body, headers=headers)
        status = resp.status_code
        if not 200 <= status < 300:
            error = f"HTTP {status}"
    except FaceplaneError as exc:
        error = f"{exc.err.name}: {exc.message}"
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"
    duration = (time.perf_counter() - started) * 1000
    now = time.time()
    if error is None:
        state, next_at = "delivered", None
    elif attempt >= s.webhook_max_attempts:
        state, next_at = "failed", None
    else:
        state, next_at = "pending", now + s.webhook_backoff_s * 2 ** (attempt - 1)
    with write_tx(store.db) as conn:
        conn.execute(
            webhook_attempts.insert().values(
                task_id=row["id"],
                attempt=attempt,
                at=now,
                http_status=status,
                error=error,
                duration_ms=round(duration, 1),
            )
        )
        conn.execute(
            update(tasks)
            .where(tasks.c.id == row["id"])
            .values(webhook_state=state, webhook_next_at=next_at)
        )
    if error:
        log.info("webhook for task %s attempt %d failed: %s", row["id"], attempt, error)
