"""The task API's use cases: submit, get, list, cancel. The task table is the truth."""

from __future__ import annotations

import json
import logging
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from faceplane.engine.fetch import check_url
from faceplane.errors import Err, FaceplaneError
from faceplane.runtime import Runtime
from faceplane.services.cursors import decode_cursor, encode_cursor
from faceplane.services.idempotency import mark_repeats, repeat_of, request_hash
from faceplane.services.images import ImageSource, b64decode_checked
from faceplane.services.operations import get_operation, validate_options
from faceplane.store import Store
from faceplane.store.blobs import blob_url, content_type, verify_blob
from faceplane.store.db import tasks, webhook_attempts, write_tx
from faceplane.tasks.state import FINISHED, Status, transition
from faceplane.tasks.webhooks import check_secret
from faceplane.timestamps import iso_utc, parse_time

log = logging.getLogger("faceplane.tasks")

# Image result names → the Pho.to-style URL fields they are published as.
URL_FIELDS = {
    "result": "result_url",
    "thumb1": "thumb1_url",
    "thumb2": "thumb2_url",
    "thumb_ini1": "thumb_ini1_url",
    "thumb_ini2": "thumb_ini2_url",
}


@dataclass(frozen=True)
class TaskSpec:
    """One task as a caller asks for it."""

    operation: str
    images: dict[str, ImageSource]
    options: dict[str, Any]
    webhook_url: str | None = None
    webhook_secret: str | None = None
    idempotency_key: str | None = None
    # The hash of the request as the client sent it, when it was taken before defaults (an
    # app's webhook) were filled in; None: `request_hash` of this spec.
    request_hash: str | None = None
    # The route family that submits it (one of ORIGINS): a vendor's unauthenticated polling
    # route serves only the tasks its own family created.
    origin: str = "native"


# Route families that create tasks, as recorded in `tasks.origin` (NULL: a task stored before
# origins were recorded; no family's request-id-only route serves it).
ORIGINS = ("native", "ailab", "oz", "photo")


def new_task_id() -> str:
    """A fresh task id (it is also the task's request_id)."""
    return uuid.uuid4().hex


def _store_inputs(store: Store, rt: Runtime, task_id: str, spec: TaskSpec) -> dict:
    """Keep uploaded bytes as blobs and URLs as URLs; nothing is decoded here."""
    stored: dict[str, dict[str, str]] = {}
    for name, src in spec.images.items():
        if src.url is not None:
            check_url(src.url, rt.fetch)
            stored[name] = {"url": src.url}
            continue
        data = src.data
        if data is None and src.base64 is not None:
            data = b64decode_checked(rt, name, src.base64)
        if data is None:
            continue
        key = store.blobs.put(f"tasks/{task_id}/input/{name}", data)
        stored[name] = {"blob": key}
    return stored


def _check_spec(rt: Runtime, spec: TaskSpec) -> None:
    op = get_operation(spec.operation)
    validate_options(op, spec.options)
    if not op.optional_images:
        for name in op.image_fields:
            if name not in spec.images:
                raise FaceplaneError(
                    Err.MISSING_ARGUMENT, f"No image was given in `{name}`.", field=name
                )
    for name in spec.images:
        if name not in op.image_fields:
            raise FaceplaneError(
                Err.INVALID_ARGUMENT,
                f"`{spec.operation}` takes images {', '.join(op.image_fields)}, not `{name}`.",
                field=name,
            )
    if spec.webhook_url:
        check_secret(spec.webhook_secret)  # a short secret is guessable: 16 bytes at least
        check_webhook_url(rt, spec.webhook_url)
    # PostgreSQL refuses a value longer than its column (SQLite would keep it): refuse it here
    # as input, the same on both, before anything is stored.
    for field, value in (
        ("idempotency_key", spec.idempotency_key),
        ("webhook_secret", spec.webhook_secret),
    ):
        longest = getattr(tasks.c[field].type, "length", None)  # String(n) columns
        if value is not None and longest is not None and len(value) > longest:
            raise FaceplaneError(
                Err.INVALID_ARGUMENT,
                f"`{field}` is at most {longest} characters long.",
                field=field,
                max_length=longest,
            )


def check_webhook_url(rt: Runtime, url: str) -> None:
    """A webhook target follows the rules of every URL (no private address unless allowed)."""
    check_url(url, rt.fetch)


def submit_task(
    rt: Runtime, company_id: str, spec: TaskSpec, batch_id: str | None = None
) -> tuple[dict[str, Any], bool]:
    """Queue a task; return (its rendering, created). A repeated idempotency key returns the
    existing task (created = False), never a duplicate."""
    store = rt.store
    if spec.origin not in ORIGINS:
        raise ValueError(f"unknown task origin {spec.origin!r}")
    digest = None
    if spec.idempotency_key:
        digest = request_hash(rt, spec)
        existing = repeat_of(rt, company_id, spec.idempotency_key, digest)
        if existing is not None:
            return render_task(rt, existing), False
    _check_spec(rt, spec)
    check_capacity(rt, 1, company_id)
    task_id = new_task_id()
    try:
        row, existing = _insert_task(rt, company_id, spec, task_id, digest, batch_id)
    except BaseException:
        # Whatever failed once inputs were being written (a refused insert, a database locked
        # past its timeout, a bad URL after an uploaded image): no row refers to these blobs.
        store.blobs.delete_prefix(f"tasks/{task_id}")
        raise
    if existing is not None:
        store.blobs.delete_prefix(f"tasks/{task_id}")
        return render_task(rt, existing), False
    rendered = render_task(rt, row)
    if spec.webhook_url and not spec.webhook_secret:
        rendered["webhook"]["secret"] = row["webhook_secret"]  # shown once, at creation
    return rendered, True


def _insert_task(
    rt: Runtime,
    company_id: str,
    spec: TaskSpec,
    task_id: str,
    digest: str | None,
    batch_id: str | None,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Store the inputs and insert the row: (the row, None), or (the row not inserted, the
    task that won an idempotency race with it)."""
    store = rt.store
    s = rt.settings
    inputs = _store_inputs(store, rt, task_id, spec)
    now = time.time()
    secret = spec.webhook_secret or (secrets.token_hex(16) if spec.webhook_url else None)
    row = {
        "id": task_id,
        "company_id": company_id,
        "operation": spec.operation,
        "status": Status.QUEUED.value,
        "input_json": json.dumps(inputs),
        "options_json": json.dumps(spec.options),
        "attempts": 0,
        "max_attempts": s.task_max_attempts,
        "created_at": now,
        "updated_at": now,
        "expires_at": now + s.task_ttl_s,
        "cancel_requested": False,
        "idempotency_key": spec.idempotency_key,
        "request_hash": digest,
        "batch_id": batch_id,
        "webhook_url": spec.webhook_url,
        "webhook_secret": secret,
        "purged": False,
        "origin": spec.origin,
    }
    try:
        with write_tx(store.db) as conn:
            conn.execute(tasks.insert().values(**row))
    except IntegrityError as exc:
        # Two submissions with one key raced: the first one won; answer with it (or with
        # TASK_CONFLICT when the two were different requests).
        existing = None
        if spec.idempotency_key and digest:
            existing = repeat_of(rt, company_id, spec.idempotency_key, digest)
        if existing is None:
            raise _not_stored(exc) from exc  # another constraint refused the row
        return row, existing
    except SQLAlchemyError as exc:  # locked past its timeout, gone, refused the value
        raise _not_stored(exc) from exc
    return row, None


def _not_stored(exc: Exception) -> FaceplaneError:
    """DATABASE_ERROR for an insert the database refused: a catalogue error, so the
    submission's credits are given back (nothing was queued)."""
    # The driver's own message, never SQLAlchemy's: that one quotes every parameter (the
    # webhook secret among them).
    orig = getattr(exc, "orig", None) or exc
    log.error("a task could not be stored: %s: %s", type(orig).__name__, str(orig).split("\n")[0])
    return FaceplaneError(
        Err.DATABASE_ERROR, "The task could not be stored; nothing was queued. Try again."
    )


def check_capacity(rt: Runtime, incoming: int, company_id: str) -> None:
    """Refuse new work with SERVER_BUSY (503, Retry-After) when the queue is full, and with
    RATE_LIMIT_EXCEEDED (429, Retry-After) when the company's own share of it is: one
    tenant's backlog must not refuse everyone else."""
    st = rt.settings
    queued_now = tasks.c.status == Status.QUEUED
    with rt.store.db.connect() as conn:
        queued = conn.execute(
            select(func.count()).select_from(tasks).where(queued_now)
        ).scalar_one()
        mine = conn.execute(
            select(func.count())
            .select_from(tasks)
            .where(and_(queued_now, tasks.c.company_id == company_id))
        ).scalar_one()
    if queued + incoming > st.task_max_queue:
        raise FaceplaneError(
            Err.SERVER_BUSY,
            "Maximum server load reached: the task queue is full; try again later.",
            queued=queued,
            max_queue=st.task_max_queue,
            retry_after_s=5,
        )
    per_company = min(st.task_max_queue_per_company, st.task_max_queue)
    if mine + incoming > per_company:
        raise FaceplaneError(
            Err.RATE_LIMIT_EXCEEDED,
            f"This company has {mine} tasks queued, and at most {per_company} may wait at "
            "once; submit more when some have started.",
            queued=mine,
            incoming=incoming,
            max_queue_per_company=per_company,
            retry_after_s=5,
        )


def submit_batch(
    rt: Runtime, company_id: str, specs: list[TaskSpec]
) -> tuple[list[dict[str, Any]], list[bool], str]:
    """Queue several tasks: all are checked first, so a bad item queues nothing. Returns the
    renderings, whether each was created (False: its idempotency key named an existing
    task), and the batch id."""
    limit = rt.settings.batch_max_items
    if len(specs) > limit:
        raise FaceplaneError(
            Err.BATCH_LIMIT_EXCEEDED,
            f"A batch holds at most {limit} tasks; this one has {len(specs)}.",
            items=len(specs),
            max_items=limit,
        )
    if not specs:
        raise FaceplaneError(Err.MISSING_ARGUMENT, "The batch has no items.")
    for i, spec in enumerate(specs):
        try:
            _check_spec(rt, spec)
        except FaceplaneError as exc:
            exc.details.setdefault("item", i)
            raise
    # A conflicting key refuses the whole batch before anything is queued; repeats take no
    # room in the queue.
    checked, repeats = mark_repeats(rt, company_id, specs, batch=True)
    check_capacity(rt, repeats.count(False), company_id)
    batch_id = new_task_id()
    done = [submit_task(rt, company_id, spec, batch_id) for spec in checked]
    return [task for task, _ in done], [created for _, created in done], batch_id


def load_task(rt: Runtime, company_id: str, task_id: str) -> dict[str, Any]:
    """The task row, or TASK_NOT_FOUND (also for another company's task: ids leak nothing)."""
    store = rt.store
    with store.db.connect() as conn:
        row = (
            conn.execute(
                select(tasks).where(and_(tasks.c.id == task_id, tasks.c.company_id == company_id))
            )
            .mappings()
            .first()
        )
    if row is None:
        raise FaceplaneError(Err.TASK_NOT_FOUND, "There is no task with this id.", id=task_id)
    return dict(row)


def render_task(rt: Runtime, row: dict[str, Any]) -> dict[str, Any]:
    """The public form of a task: status, timestamps, attempts, result (with signed URLs)."""
    store = rt.store
    out: dict[str, Any] = {
        "request_id": row["id"],
        "operation": row["operation"],
        "status": row["status"],
        "created_at": iso_utc(row["created_at"]),
        "started_at": iso_utc(row.get("started_at")),
        "finished_at": iso_utc(row.get("finished_at")),
        "expires_at": iso_utc(row["expires_at"]),
        "attempts": row["attempts"],
        "max_attempts": row["max_attempts"],
    }
    if row.get("batch_id"):
        out["batch_id"] = row["batch_id"]
    if row.get("cancel_requested") and row["status"] == Status.RUNNING:
        out["cancel_requested"] = True
    if row.get("result_json"):
        result = json.loads(row["result_json"])
        images: dict[str, str] = result.pop("_images", {})
        st = rt.settings
        base = (st.public_url or f"http://{st.host}:{st.port}").rstrip("/")
        urls = {
            n: blob_url(store.secret, k, row["company_id"], st.blob_url_ttl_s, base)
            for n, k in images.items()
        }
        for name, field in URL_FIELDS.items():
            if name in urls:
                out[field] = urls[name]
        for face in result.get("faces", []):
            crop = face.get("crop")
            if crop and crop.get("image") in urls:
                crop["url"] = urls[crop.pop("image")]
        out["result"] = result
    if row.get("error_json"):
        out["error"] = json.loads(row["error_json"])
    if row.get("webhook_url"):
        out["webhook"] = {
            "url": row["webhook_url"],
            "state": row.get("webhook_state") or "waiting",
            "deliveries": _deliveries(store, row["id"]),
        }
    return out


def read_blob(rt: Runtime, key: str, company_id: str, expires: int, sig: str) -> tuple[bytes, str]:
    """A stored result image and its media type, if its signed URL is valid and unexpired."""
    verify_blob(rt.store.secret, key, company_id, expires, sig)
    return rt.store.blobs.get(key), content_type(key)


def _deliveries(store: Store, task_id: str) -> list[dict[str, Any]]:
    with store.db.connect() as conn:
        rows = (
            conn.execute(
                select(webhook_attempts)
                .where(webhook_attempts.c.task_id == task_id)
                .order_by(webhook_attempts.c.attempt)
            )
            .mappings()
            .all()
        )
    return [
        {
            "attempt": r["attempt"],
            "at": iso_utc(r["at"]),
            "http_status": r["http_status"],
            "error": r["error"],
            "duration_ms": r["duration_ms"],
        }
        for r in rows
    ]


def get_task(rt: Runtime, company_id: str, task_id: str) -> dict[str, Any]:
    """A task's state; TASK_EXPIRED once its inputs and results were deleted."""
    row = load_task(rt, company_id, task_id)
    if row["purged"]:
        raise FaceplaneError(
            Err.TASK_EXPIRED,
            "This task's inputs and results have expired and were deleted.",
            id=task_id,
            expired_at=iso_utc(row["expires_at"]),
        )
    return render_task(rt, row)


def cancel_task(rt: Runtime, company_id: str, task_id: str) -> dict[str, Any]:
    """Cancel a queued task at once; ask a running one to stop; refuse a finished one."""
    store = rt.store
    row = load_task(rt, company_id, task_id)
    now = time.time()
    with write_tx(store.db) as conn:
        done = transition(conn, task_id, Status.QUEUED, Status.CANCELED, now=now)
        if not done:
            conn.execute(
                update(tasks)
                .where(and_(tasks.c.id == task_id, tasks.c.status == Status.RUNNING))
                .values(cancel_requested=True, updated_at=now)
            )
    row = load_task(rt, company_id, task_id)
    if row["status"] == Status.CANCELED and not done:
        raise FaceplaneError(Err.TASK_REVOKED, "The task was already canceled.", id=task_id)
    if row["status"] in FINISHED and row["status"] != Status.CANCELED:
        raise FaceplaneError(
            Err.TASK_REVOCATION_FAILED,
            f"The task has already {row['status']}; it cannot be canceled.",
            id=task_id,
            status=row["status"],
        )
    return render_task(rt, row)


def list_tasks(
    rt: Runtime,
    company_id: str,
    status: str | None,
    since: str | None,
    limit: int,
    cursor: str | None,
) -> dict[str, Any]:
    """The caller's tasks, newest first, `limit` per page; `next_cursor` fetches the next.
    `since` is an ISO 8601 time (created at or after it)."""
    store = rt.store
    query = select(tasks).where(tasks.c.company_id == company_id)
    if status:
        query = query.where(tasks.c.status == Status(status).value)
    if since is not None:
        query = query.where(tasks.c.created_at >= parse_time(since, "since"))
    if cursor:
        created, tid = decode_cursor(cursor, float, str)
        query = query.where(
            (tasks.c.created_at < created) | and_(tasks.c.created_at == created, tasks.c.id < tid)
        )
    query = query.order_by(tasks.c.created_at.desc(), tasks.c.id.desc()).limit(limit + 1)
    with store.db.connect() as conn:
        rows = [dict(r) for r in conn.execute(query).mappings().all()]
    page = rows[:limit]
    last = page[-1] if len(rows) > limit and page else None
    return {
        "tasks": [render_task(rt, r) for r in page],
        "next_cursor": encode_cursor(last["created_at"], last["id"]) if last else None,
    }


def get_task_and_options(
    rt: Runtime, company_id: str, task_id: str, row: dict[str, Any] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A task's public form, as `get_task` gives it, and the options it was submitted with
    (a dialect renders the result in the caller's own terms); `row`: one already loaded."""
    if row is None or row["purged"]:
        row = load_task(rt, company_id, task_id)
    # get_task answers TASK_EXPIRED for a purged task, in the one wording of that error.
    task = get_task(rt, company_id, task_id) if row["purged"] else render_task(rt, row)
    return task, json.loads(row["options_json"] or "{}")


# ---- tasks found by request id alone (Pho.to: the 128-bit request id is the capability) -----

# The blob a task's JSON result is published as when it made no result image (detect).
RESULT_DOCUMENT = "result.json"


def load_task_by_request_id(rt: Runtime, request_id: str, origin: str) -> dict[str, Any]:
    """The row of the task with this request id that route family `origin` created, whoever's
    it is; TASK_NOT_FOUND for an empty or unknown id and for another family's task (alike:
    the answer tells nothing of it), TASK_EXPIRED once its inputs and results were deleted."""
    if not request_id:
        raise FaceplaneError(Err.TASK_NOT_FOUND, "Bad, invalid or empty REQUEST_ID parameter.")
    with rt.store.db.connect() as conn:
        row = (
            conn.execute(
                select(tasks).where(and_(tasks.c.id == request_id, tasks.c.origin == origin))
            )
            .mappings()
            .first()
        )
    if row is None:
        raise FaceplaneError(Err.TASK_NOT_FOUND, "There is no task with such REQUEST_ID.")
    if row["purged"]:
        raise FaceplaneError(
            Err.TASK_EXPIRED, "This task's inputs and results have expired and were deleted."
        )
    return dict(row)


def get_task_by_request_id(rt: Runtime, request_id: str, origin: str) -> dict[str, Any]:
    """The rendering of a task route family `origin` created, by request id alone (another
    family's task is not found: no blob URL is ever signed for it here); a succeeded task
    that made no result image gets `result_url`: a signed URL to its result as a JSON
    document."""
    row = load_task_by_request_id(rt, request_id, origin)
    task = render_task(rt, row)
    if task["status"] == Status.SUCCEEDED and "result_url" not in task and "result" in task:
        task["result_url"] = publish_result_document(rt, row, task["result"])
    return task


def publish_result_document(rt: Runtime, row: dict[str, Any], result: dict[str, Any]) -> str:
    """Store a task's result as a JSON blob (once) and return a signed URL to it."""
    store = rt.store
    key = f"tasks/{row['id']}/result/{RESULT_DOCUMENT}"
    try:
        store.blobs.get(key)
    except FaceplaneError:
        document = {"request_id": row["id"], "operation": row["operation"], **result}
        store.blobs.put(key, json.dumps(document).encode())
        # Expiry may have deleted the task's blobs between our read and this write: then
        # the document must go too (deletion is real), and the task is gone.
        try:
            load_task_by_request_id(rt, row["id"], row["origin"])
        except FaceplaneError:
            store.blobs.delete_prefix(f"tasks/{row['id']}")
            raise
    st = rt.settings
    base = (st.public_url or f"http://{st.host}:{st.port}").rstrip("/")
    return blob_url(store.secret, key, row["company_id"], st.blob_url_ttl_s, base)
