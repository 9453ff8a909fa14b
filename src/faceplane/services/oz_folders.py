"""Oz folders, media and analyses, kept as blobs and tasks, and their rendering in Oz's shape.

A folder is ``oz/<folder_id>/folder.json`` (company_id company, tags, metadata) beside its media
``oz/<folder_id>/media/<media_id>.<ext>``. An analysis is a task whose ``batch_id`` is the
folder id and whose ``request_id`` is the analysis id, so it runs, retries, expires and sends
webhooks like any task; ``oz/<folder_id>/analyses/<id>.json`` remembers its source media.
"""

from __future__ import annotations

import io
import json
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

from PIL import Image
from sqlalchemy import and_, select

from faceplane.compat.oz import render as oz
from faceplane.engine.fetch import check_url
from faceplane.engine.image import SUPPORTED_FORMATS, check_size
from faceplane.errors import Err, FaceplaneError
from faceplane.runtime import Runtime
from faceplane.services.images import ImageSource
from faceplane.services.tasks import TaskSpec, check_capacity, load_task, submit_task
from faceplane.store import Store
from faceplane.store.blobs import blob_url
from faceplane.store.db import tasks

MAX_MEDIA = 20
TAG = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
# Oz analysis type → the operation its task runs, and back.
OPERATIONS = {"BIOMETRY": "compare", "COLLECTION": "blacklist_check"}
TYPES = {op: kind for kind, op in OPERATIONS.items()}
# Documented Oz types this server cannot run yet: NOT REALIZED (2), not INVALID VALUE (4).
NOT_REALIZED_TYPES = ("QUALITY", "DOCUMENTS")
_CONTAINER_EXTRA = ("payload.json", "signature")


@dataclass(frozen=True)
class Upload:
    """One media file as received: its form key (or zip name), file name and bytes."""

    key: str
    filename: str
    data: bytes


@dataclass(frozen=True)
class AnalysisRequest:
    """One requested analysis: its Oz type and the media ids it names (None: choose)."""

    type: str
    source_media: list[str] | None = None


def parse_id(value: str, name: str) -> str:
    """An Oz id as 32 hex digits; a string that is no UUID is Oz's INVALID VALUE (4)."""
    try:
        return uuid.UUID(value).hex
    except ValueError:
        raise FaceplaneError(Err.INVALID_ARGUMENT, f"`{name}` is not a UUID.", field=name) from None


def read_payload(payload: Any) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """The `media:tags` and `folder:meta_data` of an Oz upload payload."""
    if not isinstance(payload, dict):
        raise FaceplaneError(Err.INVALID_TYPE, "`payload` must be a JSON object.", field="payload")
    tags, meta = payload.get("media:tags") or {}, payload.get("folder:meta_data") or {}
    if not isinstance(tags, dict) or not isinstance(meta, dict):
        raise FaceplaneError(
            Err.INVALID_TYPE, "`media:tags` and `folder:meta_data` must be JSON objects."
        )
    for key, value in tags.items():
        if not isinstance(value, list) or not all(
            isinstance(t, str) and TAG.match(t) for t in value
        ):
            raise FaceplaneError(
                Err.INVALID_ARGUMENT,
                f"`media:tags.{key}` must be a list of tags such as photo_selfie.",
                field=f"media:tags.{key}",
            )
    return tags, meta


def _image_ext(rt: Runtime, upload: Upload) -> str:
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


def create_folder(
    rt: Runtime,
    store: Store,
    company_id: str,
    creator: str,
    uploads: list[Upload],
    tags: dict[str, list[str]],
    meta: dict[str, Any],
) -> dict[str, Any]:
    """Store the media as blobs and the folder as JSON; return the folder record."""
    if not uploads:
        raise FaceplaneError(Err.MISSING_ARGUMENT, "A folder needs at least one media file.")
    if len(uploads) > MAX_MEDIA:
        raise FaceplaneError(
            Err.BATCH_LIMIT_EXCEEDED,
            f"A folder holds at most {MAX_MEDIA} media.",
            media=len(uploads),
        )
    unknown = sorted(set(tags) - {u.key for u in uploads})
    if unknown:
        raise FaceplaneError(
            Err.INVALID_ARGUMENT, "`media:tags` names files that were not sent.", media=unknown
        )
    exts = [_image_ext(rt, u) for u in uploads]
    folder_id, now = uuid.uuid4().hex, round(time.time(), 3)
    media = []
    for upload, ext in zip(uploads, exts, strict=True):
        media_id = uuid.uuid4().hex
        media.append(
            {
                "media_id": media_id,
                "original_name": upload.filename[-255:],
                "tags": tags.get(upload.key, []),
                "blob": store.blobs.put(f"oz/{folder_id}/media/{media_id}.{ext}", upload.data),
                "size": len(upload.data),
            }
        )
    folder = {
        "folder_id": folder_id,
        "company_id": company_id,
        "creator": creator,
        "time_created": now,
        "meta_data": meta,
        "media": media,
    }
    # Written last: a folder exists only once all of its media are stored.
    store.blobs.put(f"oz/{folder_id}/folder.json", json.dumps(folder).encode())
    return folder


def load_folder(store: Store, company_id: str, folder_id: str) -> dict[str, Any]:
    """The caller's folder; another company's is answered exactly like a missing one."""
    try:
        folder: dict[str, Any] = json.loads(store.blobs.get(f"oz/{folder_id}/folder.json"))
    except FaceplaneError:
        folder = {}
    if folder.get("company_id") != company_id:
        raise FaceplaneError(
            Err.RESOURCE_NOT_FOUND, "There is no folder with this id.", folder_id=folder_id
        )
    return folder


def _pick_media(folder: dict[str, Any], req: AnalysisRequest) -> list[dict[str, Any]]:
    """The media an analysis runs on: those named, else the folder's (a selfie for COLLECTION)."""
    media = folder["media"]
    if req.source_media is not None:
        by_id = {m["media_id"]: m for m in media}
        missing = [m for m in req.source_media if m not in by_id]
        if missing:
            raise FaceplaneError(
                Err.RESOURCE_NOT_FOUND,
                "`source_media` names media not in this folder.",
                media=missing,
            )
        chosen = [by_id[m] for m in req.source_media]
    elif req.type == "COLLECTION" and len(media) > 1:
        chosen = [m for m in media if "photo_selfie" in m["tags"]]
    else:
        chosen = media
    need = 2 if req.type == "BIOMETRY" else 1
    if len(chosen) != need:
        what = "two photos" if need == 2 else "one photo (or the folder's one photo_selfie)"
        raise FaceplaneError(
            Err.INVALID_ARGUMENT,
            f"A {req.type} analysis here runs on exactly {what}; name them in `source_media`.",
            type=req.type,
            media=len(chosen),
        )
    return chosen


def start_analyses(
    rt: Runtime,
    store: Store,
    company_id: str,
    folder: dict[str, Any],
    requests: list[AnalysisRequest],
    webhook_url: str | None,
) -> list[dict[str, Any]]:
    """Queue one task per analysis (all are checked first, so a bad one queues nothing)."""
    plans = [(req, _pick_media(folder, req)) for req in requests]
    if webhook_url:
        check_url(webhook_url, rt.fetch)
    check_capacity(rt, len(plans))
    out = []
    for req, media in plans:
        op = OPERATIONS[req.type]
        names = ("image1", "image2") if op == "compare" else ("image",)
        images = {
            n: ImageSource(field=n, data=store.blobs.get(m["blob"]))
            for n, m in zip(names, media, strict=True)
        }
        spec = TaskSpec(op, images, {}, webhook_url)
        task, _ = submit_task(rt, company_id, spec, batch_id=folder["folder_id"])
        aid = task["request_id"]
        record = {"source_media": [m["media_id"] for m in media]}
        store.blobs.put(
            f"oz/{folder['folder_id']}/analyses/{aid}.json", json.dumps(record).encode()
        )
        rendered = render_analysis(rt, store, load_task(store, company_id, aid), folder)
        if webhook_url:  # the native task webhook's signing secret, shown only now
            rendered["technical_meta_data"]["webhook_secret"] = task["webhook"]["secret"]
        out.append(rendered)
    return out


def folder_analyses(store: Store, company_id: str, folder_id: str) -> list[dict[str, Any]]:
    """The task rows of a folder's analyses, oldest first."""
    query = (
        select(tasks)
        .where(
            and_(
                tasks.c.company_id == company_id,
                tasks.c.batch_id == folder_id,
                tasks.c.operation.in_(list(TYPES)),
            )
        )
        .order_by(tasks.c.created_at)
    )
    with store.db.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def get_analysis(rt: Runtime, store: Store, company_id: str, analysis_id: str) -> dict[str, Any]:
    """One analysis of the caller's; a task not made through this API does not exist here."""
    try:
        row = load_task(store, company_id, analysis_id)
    except FaceplaneError:
        row = {}
    if row.get("operation") not in TYPES or not row.get("batch_id"):
        raise FaceplaneError(
            Err.RESOURCE_NOT_FOUND, "There is no analysis with this id.", analysis_id=analysis_id
        )
    folder = load_folder(store, company_id, row["batch_id"])
    if row["purged"]:
        raise FaceplaneError(
            Err.TASK_EXPIRED, "This analysis has expired and its results were deleted."
        )
    return render_analysis(rt, store, row, folder)


def get_folder(rt: Runtime, store: Store, company_id: str, folder_id: str) -> dict[str, Any]:
    """A folder with its media and its analyses."""
    folder = load_folder(store, company_id, folder_id)
    rows = [r for r in folder_analyses(store, company_id, folder_id) if not r["purged"]]
    return render_folder(rt, store, folder, rows)


# ---- Oz rendering ---------------------------------------------------------------------------


def _media(rt: Runtime, store: Store, folder: dict[str, Any], m: dict[str, Any]) -> dict:
    s = rt.settings
    base = (s.public_url or f"http://{s.host}:{s.port}").rstrip("/")
    return {
        "media_id": m["media_id"],
        "folder_id": folder["folder_id"],
        "media_type": "IMAGE_FOLDER",
        "original_name": m["original_name"],
        "original_url": blob_url(
            store.secret, m["blob"], folder["company_id"], s.blob_url_ttl_s, base
        ),
        "tags": m["tags"],
        "time_created": folder["time_created"],
        "time_updated": folder["time_created"],
        "meta_data": {},
        "technical_meta_data": {"size_bytes": m["size"]},
    }


def _verdict(kind: str, result: dict[str, Any]) -> tuple[bool, dict[str, Any], dict[str, Any]]:
    """(passed, results_data, Faceplane's own measures) of a finished analysis."""
    if kind == "BIOMETRY":
        sim = result["similarity"]
        measures = {"threshold": result["threshold"], "model": result["model"]}
        return bool(result["match"]), {"max_confidence": sim, "min_confidence": sim}, measures
    persons = [
        {
            "collection_id": m["collection_id"],
            "collection_name": m["collection_name"],
            "person_id": m["subject_id"],
            "person_name": m["subject_name"],
            "confidence": m["similarity"],
        }
        for m in result["matches"]
    ]
    best = persons[0]["confidence"] if persons else None
    measures = {k: result[k] for k in ("threshold", "far", "blacklists")}
    return not result["hit"], {"max_confidence": best, "persons": persons}, measures


def render_analysis(
    rt: Runtime, store: Store, row: dict[str, Any], folder: dict[str, Any]
) -> dict[str, Any]:
    """An analysis in Oz's shape, from its task row."""
    kind, aid = TYPES[row["operation"]], row["id"]
    passed: bool | None = None
    data: dict[str, Any] | None = None
    measures: dict[str, Any] = {}
    if row["status"] == "succeeded" and row.get("result_json"):
        passed, data, measures = _verdict(kind, json.loads(row["result_json"]))
    try:
        record = json.loads(store.blobs.get(f"oz/{folder['folder_id']}/analyses/{aid}.json"))
    except FaceplaneError:  # queued but not yet recorded: a moment's race, no loss
        record = {"source_media": []}
    by_id = {m["media_id"]: m for m in folder["media"]}
    out: dict[str, Any] = {
        # Oz's pages spell the id both ways (analyse_id, analysis_id): both are given.
        "analyse_id": aid,
        "analysis_id": aid,
        "folder_id": folder["folder_id"],
        "type": kind,
        "state": oz.analysis_state(row["status"]),
        "resolution_status": oz.resolution(row["status"], passed),
        "results_data": data,
        "results_media": [],
        "source_media": [
            _media(rt, store, folder, by_id[m]) for m in record["source_media"] if m in by_id
        ],
        "time_created": round(row["created_at"], 3),
        "time_updated": round(row["updated_at"], 3),
        "technical_meta_data": measures,
    }
    if row.get("error_json"):
        error = json.loads(row["error_json"])
        err = Err.__members__.get(error.get("code", ""), Err.INTERNAL)
        out["error_code"], out["error_message"] = err.oz, error.get("message", err.message)
    return out


def _folder_status(analyses: list[dict[str, Any]]) -> str:
    """Oz's folder.resolution_status: INITIAL without analyses, else the worst of them."""
    if not analyses:
        return "INITIAL"
    states = {a["resolution_status"] for a in analyses}
    for status in ("PROCESSING", "FAILED", "DECLINED", "OPERATOR_REQUIRED"):
        if status in states:
            return status
    return "SUCCESS"


def render_folder(
    rt: Runtime, store: Store, folder: dict[str, Any], rows: list[dict[str, Any]]
) -> dict[str, Any]:
    """A folder in Oz's shape, with its media and analyses."""
    analyses = [render_analysis(rt, store, r, folder) for r in rows]
    return {
        "folder_id": folder["folder_id"],
        "company_id": folder["company_id"],
        "time_created": folder["time_created"],
        "time_updated": max([folder["time_created"], *(a["time_updated"] for a in analyses)]),
        "meta_data": folder["meta_data"],
        "technical_meta_data": {},
        "resolution_status": _folder_status(analyses),
        "media": [_media(rt, store, folder, m) for m in folder["media"]],
        "analyses": analyses,
    }
