"""Analysis sessions: a company's media and the analyses run on them (Oz folders; liveness next).

A session, its media and its analyses are rows (``analysis_sessions``, ``session_media``,
``session_analyses``); the media bytes are blobs under ``sessions/<session_id>/``. An analysis
is a task (services/session_analyses.py starts them): its state and result are read from the
task row, never copied here. Deleting a session deletes its media, its analyses' task inputs
and results, and its rows, for real.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from PIL import Image
from sqlalchemy import and_, delete, select, update
from sqlalchemy.engine import Connection

from faceplane.engine.image import SUPPORTED_FORMATS, check_size
from faceplane.errors import Err, FaceplaneError
from faceplane.runtime import Runtime
from faceplane.services.tasks import cancel_task
from faceplane.store.blobs import blob_url
from faceplane.store.db import (
    analysis_sessions,
    session_analyses,
    session_media,
    tasks,
    write_tx,
)
from faceplane.tasks.state import FINISHED

MAX_MEDIA = 20
TAG = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@dataclass(frozen=True)
class Upload:
    """One media file as received: the name the client gave it (form key, zip entry), its file
    name and its bytes."""

    key: str
    filename: str
    data: bytes


@dataclass(frozen=True)
class Media:
    """One media of a session, with a signed, expiring URL to its bytes."""

    id: str
    session_id: str
    kind: str  # photo | video
    tags: list[str]
    metadata: dict[str, Any]
    original_name: str
    size_bytes: int
    sha256: str
    created_at: float
    url: str
    blob_key: str = field(repr=False)


@dataclass(frozen=True)
class Analysis:
    """One analysis: its type, the media it runs on and the state of its task."""

    id: str
    session_id: str
    type: str
    task_id: str
    status: str  # the task's status (faceplane.tasks.state.Status)
    source_media: list[Media]
    params: dict[str, Any]
    result: dict[str, Any] | None
    # The task's error, with the task's input names replaced by the media they came from.
    error: dict[str, Any] | None
    created_at: float
    updated_at: float
    purged: bool = False
    webhook_secret: str | None = None  # shown once, when the analysis starts


@dataclass(frozen=True)
class Session:
    """A session with its media (upload order) and its unexpired analyses (oldest first)."""

    id: str
    company_id: str
    creator: str
    tags: list[str]
    metadata: dict[str, Any]
    created_at: float
    updated_at: float
    media: list[Media]
    analyses: list[Analysis]


def check_tags(tags: Any, where: str) -> list[str]:
    """A list of tags (``photo_selfie``, ``video_selfie_blank``...), else INVALID_ARGUMENT."""
    if not isinstance(tags, list) or not all(isinstance(t, str) and TAG.match(t) for t in tags):
        raise FaceplaneError(
            Err.INVALID_ARGUMENT,
            f"`{where}` must be a list of tags such as photo_selfie ([A-Za-z0-9_.-], 1-64).",
            field=where,
        )
    return list(tags)


def _photo_ext(rt: Runtime, upload: Upload) -> str:
    """The file extension of a photo; refuse what is not one before anything is stored."""
    try:
        check_size(len(upload.data), rt.limits)
    except FaceplaneError as exc:
        exc.details["media"] = upload.key
        raise
    try:
        fmt = Image.open(io.BytesIO(upload.data)).format  # the header only: cheap
    except Exception:  # Pillow raises many types on non-images; all mean "not a photo"
        fmt = None
    if fmt not in SUPPORTED_FORMATS:
        raise FaceplaneError(
            Err.IMAGE_FORMAT_UNSUPPORTED,
            f"`{upload.key}` is not a photo: this server analyses JPEG, PNG, WebP, BMP, GIF or "
            "TIFF photos, not videos or shot sets.",
            media=upload.key,
        )
    return str(fmt).lower()


def create_session(
    rt: Runtime,
    company_id: str,
    creator: str,
    uploads: list[Upload],
    media_tags: Mapping[str, list[str]],
    metadata: dict[str, Any],
    tags: Iterable[str] = (),
) -> Session:
    """Store the media as blobs and the session and its media as rows; return the session."""
    if not uploads:
        raise FaceplaneError(Err.MISSING_ARGUMENT, "A session needs at least one media file.")
    if len(uploads) > MAX_MEDIA:
        raise FaceplaneError(
            Err.BATCH_LIMIT_EXCEEDED,
            f"A session holds at most {MAX_MEDIA} media.",
            media=len(uploads),
            max_media=MAX_MEDIA,
        )
    unknown = sorted(set(media_tags) - {u.key for u in uploads})
    if unknown:
        raise FaceplaneError(
            Err.INVALID_ARGUMENT, "Tags were given for media that were not sent.", media=unknown
        )
    for key, value in media_tags.items():
        check_tags(value, key)
    session_tags = check_tags(list(tags), "tags")
    try:
        metadata_json = json.dumps(metadata, allow_nan=False)
    except ValueError:  # NaN or Infinity: Python's parser takes them, no JSON answer carries them
        raise FaceplaneError(
            Err.INVALID_ARGUMENT,
            "The folder's metadata (`folder:meta_data`) holds NaN or Infinity, which JSON "
            "cannot carry.",
            field="folder:meta_data",
        ) from None
    exts = [_photo_ext(rt, u) for u in uploads]
    sid, now = uuid.uuid4().hex, time.time()
    media_rows = []
    for position, (upload, ext) in enumerate(zip(uploads, exts, strict=True)):
        mid = uuid.uuid4().hex
        key = rt.store.blobs.put(f"sessions/{sid}/media/{mid}.{ext}", upload.data)
        media_rows.append(
            {
                "id": mid,
                "session_id": sid,
                "company_id": company_id,
                "position": position,
                "kind": "photo",
                "tags_json": json.dumps(list(media_tags.get(upload.key, []))),
                "metadata_json": "{}",
                "blob_key": key,
                "original_name": upload.filename[-255:],
                "size_bytes": len(upload.data),
                "sha256": hashlib.sha256(upload.data).hexdigest(),
                "created_at": now,
            }
        )
    session_row = {
        "id": sid,
        "company_id": company_id,
        "creator": creator,
        "tags_json": json.dumps(session_tags),
        "metadata_json": metadata_json,
        "created_at": now,
        "updated_at": now,
    }
    try:
        with write_tx(rt.store.db) as conn:
            conn.execute(analysis_sessions.insert().values(**session_row))
            conn.execute(session_media.insert(), media_rows)
    except Exception:
        rt.store.blobs.delete_prefix(f"sessions/{sid}")  # no orphaned photos
        raise
    return _session(rt, session_row, media_rows, [])


def _not_found(session_id: str) -> FaceplaneError:
    # Another company's session is answered exactly like a missing one: ids leak nothing.
    return FaceplaneError(
        Err.RESOURCE_NOT_FOUND, "There is no session with this id.", session_id=session_id
    )


def _session_rows(
    conn: Connection, company_id: str, session_id: str
) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    row = (
        conn.execute(
            select(analysis_sessions).where(
                and_(
                    analysis_sessions.c.id == session_id,
                    analysis_sessions.c.company_id == company_id,
                )
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        return None
    media = conn.execute(
        select(session_media)
        .where(session_media.c.session_id == session_id)
        .order_by(session_media.c.position)
    ).mappings()
    return dict(row), [dict(m) for m in media]


def load_session_rows(
    rt: Runtime, company_id: str, session_id: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The session row and its media rows (upload order), or RESOURCE_NOT_FOUND."""
    from faceplane.services.session_legacy import import_legacy_folder

    for _ in range(2):
        with rt.store.db.connect() as conn:
            found = _session_rows(conn, company_id, session_id)
        # A folder kept as a blob by an earlier version moves into the tables on first use.
        if found is not None or not import_legacy_folder(rt, company_id, session_id):
            break
    if found is None:
        raise _not_found(session_id)
    return found


def analysis_rows(conn: Connection, company_id: str, where: Any) -> list[dict[str, Any]]:
    """Analyses joined with their tasks (``task_*`` columns), oldest first."""
    query = (
        select(
            session_analyses,
            tasks.c.status.label("task_status"),
            tasks.c.result_json.label("task_result_json"),
            tasks.c.error_json.label("task_error_json"),
            tasks.c.updated_at.label("task_updated_at"),
            tasks.c.purged.label("task_purged"),
        )
        .join(tasks, tasks.c.id == session_analyses.c.task_id)
        .where(and_(session_analyses.c.company_id == company_id, where))
        .order_by(session_analyses.c.created_at, session_analyses.c.id)
    )
    return [dict(r) for r in conn.execute(query).mappings()]


def media_from_row(rt: Runtime, company_id: str, row: Mapping[str, Any]) -> Media:
    """A media from its row, with a fresh signed URL."""
    s = rt.settings
    base = (s.public_url or f"http://{s.host}:{s.port}").rstrip("/")
    return Media(
        id=row["id"],
        session_id=row["session_id"],
        kind=row["kind"],
        tags=json.loads(row["tags_json"]),
        metadata=json.loads(row["metadata_json"]),
        original_name=row["original_name"],
        size_bytes=row["size_bytes"],
        sha256=row["sha256"],
        created_at=row["created_at"],
        url=blob_url(rt.store.secret, row["blob_key"], company_id, s.blob_url_ttl_s, base),
        blob_key=row["blob_key"],
    )


def _media_error(error: dict[str, Any], inputs: Mapping[str, str]) -> dict[str, Any]:
    """A task's error naming the session's media instead of the task's input names."""
    details = dict(error.get("details") or {})
    message = str(error.get("message", ""))
    for name, media_id in inputs.items():
        message = message.replace(f"`{name}`", f"media {media_id}")
    name = details.pop("field", None)
    if name in inputs:
        details["media_id"] = inputs[name]
    elif name is not None:
        details["field"] = name
    return {"code": error.get("code", Err.INTERNAL.name), "message": message, "details": details}


def make_analysis(row: Mapping[str, Any], media: Mapping[str, Media]) -> Analysis:
    """An analysis from its joined row (see `analysis_rows`) and its session's media by id."""
    inputs: dict[str, str] = json.loads(row["inputs_json"])
    error = json.loads(row["task_error_json"]) if row["task_error_json"] else None
    return Analysis(
        id=row["id"],
        session_id=row["session_id"],
        type=row["type"],
        task_id=row["task_id"],
        status=row["task_status"],
        source_media=[media[m] for m in inputs.values() if m in media],
        params=json.loads(row["params_json"]),
        result=json.loads(row["task_result_json"]) if row["task_result_json"] else None,
        error=_media_error(error, inputs) if error else None,
        created_at=row["created_at"],
        updated_at=max(row["created_at"], row["task_updated_at"]),
        purged=bool(row["task_purged"]),
    )


def _session(
    rt: Runtime,
    row: Mapping[str, Any],
    media_rows: list[dict[str, Any]],
    analyses: list[dict[str, Any]],
) -> Session:
    media = [media_from_row(rt, row["company_id"], m) for m in media_rows]
    by_id = {m.id: m for m in media}
    return Session(
        id=row["id"],
        company_id=row["company_id"],
        creator=row["creator"],
        tags=json.loads(row["tags_json"]),
        metadata=json.loads(row["metadata_json"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        media=media,
        analyses=[make_analysis(a, by_id) for a in analyses],
    )


def get_session(rt: Runtime, company_id: str, session_id: str) -> Session:
    """The caller's session with its media and its unexpired analyses."""
    row, media = load_session_rows(rt, company_id, session_id)
    with rt.store.db.connect() as conn:
        analyses = analysis_rows(
            conn,
            company_id,
            and_(session_analyses.c.session_id == session_id, tasks.c.purged.is_(False)),
        )
    return _session(rt, row, media, analyses)


def delete_session(rt: Runtime, company_id: str, session_id: str) -> None:
    """Delete a session for real: its media, its analyses' task inputs and results, its rows."""
    store = rt.store
    _, media = load_session_rows(rt, company_id, session_id)
    with store.db.connect() as conn:
        analyses = analysis_rows(conn, company_id, session_analyses.c.session_id == session_id)
    for a in analyses:
        if a["task_status"] not in FINISHED:
            # A queued analysis never runs; a running one is asked to stop. One that finished
            # meanwhile refuses, and is purged below like the others.
            with contextlib.suppress(FaceplaneError):
                cancel_task(rt, company_id, a["task_id"])
    task_ids = [a["task_id"] for a in analyses]
    now = time.time()
    with write_tx(store.db) as conn:
        conn.execute(delete(session_analyses).where(session_analyses.c.session_id == session_id))
        conn.execute(delete(session_media).where(session_media.c.session_id == session_id))
        conn.execute(delete(analysis_sessions).where(analysis_sessions.c.id == session_id))
        if task_ids:
            # The task rows stay (their status and attempts are the usage record); their
            # inputs (copies of the photos) and results go, as when a task expires.
            conn.execute(
                update(tasks)
                .where(and_(tasks.c.id.in_(task_ids), tasks.c.company_id == company_id))
                .values(purged=True, result_json=None, input_json="{}", updated_at=now)
            )
    for m in media:
        store.blobs.delete_prefix(m["blob_key"])
    store.blobs.delete_prefix(f"sessions/{session_id}")
    store.blobs.delete_prefix(f"oz/{session_id}")  # where earlier versions kept a folder
    for task_id in task_ids:
        store.blobs.delete_prefix(f"tasks/{task_id}")
