"""Webhooks: a signed POST of the task's JSON when it finishes, retried with backoff.

Signature: `X-Faceplane-Signature: v1=<hex>` where hex = HMAC-SHA256(secret,
"<X-Faceplane-Timestamp>." + raw body). A dead endpoint never changes a task's outcome:
deliveries are recorded beside the task, and only their own state moves.

What a delivery promises, whatever the endpoint does:
- it is claimed once: a conditional UPDATE holds it for longer than its deadline and records
  its attempt number, so no other claim (this server's, another server's, or one after a
  crash) sends it again as the same attempt;
- one wall-clock deadline (`webhook_timeout_s`) covers connect, sending, the answer's headers
  and its body: an endpoint that trickles bytes is cut there, and the attempt is a failure;
- at most MAX_ANSWER_BYTES of the answer's body are read (its status decides), then the
  connection is closed;
- it runs on the I/O pool, a bounded number at a time (the hub schedules them), never on the
  maintenance loop.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import httpx
from sqlalchemy import and_, func, select, update

from faceplane.engine.fetch import Deadline, pinned_client
from faceplane.errors import Err, FaceplaneError
from faceplane.store.db import tasks, webhook_attempts, write_tx

if TYPE_CHECKING:  # (accounts imports check_secret: no runtime, no models for that)
    from faceplane.runtime import Runtime

log = logging.getLogger("faceplane.webhooks")

MAX_ANSWER_BYTES = 4096  # of an answer's body; only its status matters
HOLD_MARGIN_S = 30.0  # a claim's hold beyond the deadline: waiting for a thread, recording
SECRET_MIN_BYTES = 16
SECRET_MAX_CHARS = 128  # the column's width


def sign_payload(secret: str, timestamp: int, body: bytes) -> str:
    """The v1 signature of a webhook body."""
    msg = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()


def check_secret(secret: object, field: str = "webhook_secret") -> None:
    """Refuse a webhook secret shorter than 16 bytes (or not text, or too long to keep)."""
    if secret is None:
        return
    if not isinstance(secret, str):
        raise FaceplaneError(Err.INVALID_ARGUMENT, f"`{field}` must be a string.", field=field)
    try:
        size = len(secret.encode())
    except UnicodeEncodeError:  # a lone surrogate cannot key an HMAC
        raise FaceplaneError(
            Err.INVALID_ARGUMENT, f"`{field}` must be valid Unicode text.", field=field
        ) from None
    if size < SECRET_MIN_BYTES or len(secret) > SECRET_MAX_CHARS:
        raise FaceplaneError(
            Err.INVALID_ARGUMENT,
            f"`{field}` must be {SECRET_MIN_BYTES} to {SECRET_MAX_CHARS} characters long and at "
            f"least {SECRET_MIN_BYTES} bytes (leave it out to have one generated).",
            field=field,
            min_bytes=SECRET_MIN_BYTES,
            max_chars=SECRET_MAX_CHARS,
        )


@dataclass(frozen=True)
class Claim:
    """A delivery this server holds: the task's row, its attempt number, and until when."""

    row: dict[str, Any]
    attempt: int
    hold_until: float


def hold_s(rt: Runtime) -> float:
    """How long a claim holds a delivery: its deadline and a margin."""
    return rt.settings.webhook_timeout_s + HOLD_MARGIN_S


def claim_due(
    rt: Runtime,
    limit: int,
    busy: Mapping[str, int] | None = None,
    now: float | None = None,
) -> list[Claim]:
    """Claim up to `limit` due deliveries, oldest first, at most `webhook_max_concurrent_per_
    company` per company counting `busy` (deliveries in flight per company)."""
    store = rt.store
    s = rt.settings
    now = time.time() if now is None else now
    due = and_(tasks.c.webhook_state == "pending", tasks.c.webhook_next_at <= now)
    if limit <= 0:
        return []
    with store.db.connect() as conn:
        # Most calls find nothing: look without taking the write lock the workers need.
        if conn.execute(select(tasks.c.id).where(due).limit(1)).first() is None:
            return []
    in_flight = dict(busy or {})
    hold_until = now + hold_s(rt)
    claims: list[Claim] = []
    with write_tx(store.db) as conn:
        # More candidates than slots: some may belong to companies at their cap.
        rows = conn.execute(
            select(tasks).where(due).order_by(tasks.c.webhook_next_at).limit(limit * 4)
        ).mappings()
        for r in list(rows):
            if len(claims) >= limit:
                break
            company = r["company_id"]
            if in_flight.get(company, 0) >= s.webhook_max_concurrent_per_company:
                continue
            this = and_(tasks.c.id == r["id"], due)
            if (r["webhook_attempt"] or 0) >= s.webhook_max_attempts:
                # The last attempt was claimed and never recorded (its server died): give up.
                conn.execute(
                    update(tasks).where(this).values(webhook_state="failed", webhook_next_at=None)
                )
                continue
            # The condition makes the claim exclusive: of two claimants, the second finds the
            # row held (PostgreSQL re-checks it after the first commits; SQLite serialises).
            attempt = conn.execute(
                update(tasks)
                .where(this)
                .values(
                    webhook_next_at=hold_until,
                    webhook_attempt=func.coalesce(tasks.c.webhook_attempt, 0) + 1,
                )
                .returning(tasks.c.webhook_attempt)
            ).scalar()
            if attempt is not None:
                claims.append(Claim(dict(r), int(attempt), hold_until))
                in_flight[company] = in_flight.get(company, 0) + 1
    return claims


def deliver_due(rt: Runtime, render: Callable[[dict[str, Any]], dict[str, Any]]) -> int:
    """Claim what is due and attempt each once, one after the other, in this thread; return
    how many were attempted. (The server's hub delivers concurrently instead.)"""
    claims = claim_due(rt, 20)
    for claim in claims:
        deliver_claim(rt, claim, render)
    return len(claims)


def deliver_claim(
    rt: Runtime, claim: Claim, render: Callable[[dict[str, Any]], dict[str, Any]]
) -> None:
    """POST one claimed delivery within the deadline and record the attempt."""
    s = rt.settings
    row, attempt = claim.row, claim.attempt
    if time.time() + s.webhook_timeout_s + 5 > claim.hold_until and not _extend_hold(rt, claim):
        return  # it waited for a thread past its hold, and was claimed again meanwhile
    body = json.dumps(render(row)).encode()
    ts = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "Accept-Encoding": "identity",  # the answer is not read, and never inflated
        "User-Agent": "faceplane-webhook/1",
        "X-Faceplane-Event": "task.finished",
        "X-Faceplane-Task-Id": row["id"],
        "X-Faceplane-Delivery-Attempt": str(attempt),
        "X-Faceplane-Timestamp": str(ts),
        "X-Faceplane-Signature": "v1=" + sign_payload(row["webhook_secret"] or "", ts, body),
    }
    started = time.perf_counter()
    status, error = _post(rt, row["webhook_url"], body, headers)
    duration = (time.perf_counter() - started) * 1000
    _record(rt, claim, status, error, duration)
    if error:
        log.info("webhook for task %s attempt %d failed: %s", row["id"], attempt, error)


def _post(
    rt: Runtime, url: str, body: bytes, headers: dict[str, str]
) -> tuple[int | None, str | None]:
    """(HTTP status, error) of one POST under the delivery's deadline."""
    timeout_s = rt.settings.webhook_timeout_s
    started = time.monotonic()
    status: int | None = None
    try:
        # The pinned client applies the SSRF rules to the target (and checks the address
        # it connects to, so the answer of a second DNS lookup never matters).
        with (
            webhook_client(rt, timeout_s) as client,
            client.stream("POST", url, content=body, headers=headers) as resp,
        ):
            status = resp.status_code
            read = 0
            for chunk in resp.iter_raw():  # raw: a compressed answer is never inflated
                read += len(chunk)
                if read >= MAX_ANSWER_BYTES:
                    break  # closing the stream drops the connection and the rest
    except FaceplaneError as exc:
        return None, f"{exc.err.name}: {exc.message}"
    except httpx.HTTPError as exc:
        # A socket cut at the deadline may read as a disconnect: the deadline is the cause.
        if isinstance(exc, httpx.TimeoutException) or time.monotonic() - started >= timeout_s:
            return status, f"TIMEOUT: no complete answer within the {timeout_s:g} s deadline"
        return status, f"{type(exc).__name__}: {exc}"
    if status is not None and not 200 <= status < 300:
        return status, f"HTTP {status}"
    return status, None


def _extend_hold(rt: Runtime, claim: Claim) -> bool:
    """Hold the delivery for a whole deadline from now, if this claim still holds it."""
    with write_tx(rt.store.db) as conn:
        return bool(
            conn.execute(
                update(tasks)
                .where(
                    and_(
                        tasks.c.id == claim.row["id"],
                        tasks.c.webhook_state == "pending",
                        tasks.c.webhook_attempt == claim.attempt,
                    )
                )
                .values(webhook_next_at=time.time() + hold_s(rt))
            ).rowcount
        )


def _record(
    rt: Runtime, claim: Claim, status: int | None, error: str | None, duration_ms: float
) -> None:
    """Record the attempt, and move the delivery on if this claim still holds it."""
    s = rt.settings
    now = time.time()
    if error is None:
        state, next_at = "delivered", None
    elif claim.attempt >= s.webhook_max_attempts:
        state, next_at = "failed", None
    else:
        state, next_at = "pending", now + s.webhook_backoff_s * 2 ** (claim.attempt - 1)
    with write_tx(rt.store.db) as conn:
        conn.execute(
            webhook_attempts.insert().values(
                task_id=claim.row["id"],
                attempt=claim.attempt,
                at=now,
                http_status=status,
                error=error,
                duration_ms=round(duration_ms, 1),
            )
        )
        # A later claim (after this one's hold ran out) owns the state now: leave it be.
        conn.execute(
            update(tasks)
            .where(
                and_(
                    tasks.c.id == claim.row["id"],
                    tasks.c.webhook_state == "pending",
                    tasks.c.webhook_attempt == claim.attempt,
                )
            )
            .values(webhook_state=state, webhook_next_at=next_at)
        )


# ---- the HTTP client -------------------------------------------------------------------------


@contextmanager
def webhook_client(rt: Runtime, deadline_s: float) -> Iterator[httpx.Client]:
    """THE one place the webhook HTTP client is built: no redirects, nothing from the
    environment, connections pinned to the address the SSRF rules checked (no DNS
    rebinding between the check and the connect), and one `deadline_s` wall-clock deadline
    over the whole delivery."""
    policy = replace(rt.fetch, total_timeout_s=deadline_s)
    with Deadline(deadline_s) as deadline, pinned_client(policy, deadline) as client:
        yield client
