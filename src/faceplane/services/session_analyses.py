"""Analyses of a session's media: each one a task, recorded in ``session_analyses``.

An analysis type names the operation its task runs and the media it takes. The analysis id
is its task's id (the task's ``request_id``), so an analysis runs, retries, expires and sends
webhooks like any task, and ``GET /v1/tasks/{id}`` shows it too. Its state and verdict are
read from the task row.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import update

from faceplane.engine.fetch import check_url
from faceplane.errors import Err, FaceplaneError
from faceplane.runtime import Runtime
from faceplane.services.images import ImageSource
from faceplane.services.sessions import (
    Analysis,
    Media,
    analysis_rows,
    load_session_rows,
    make_analysis,
    media_from_row,
)
from faceplane.services.tasks import TaskSpec, check_capacity, submit_task
from faceplane.store.db import analysis_sessions, session_analyses, write_tx


@dataclass(frozen=True)
class AnalysisType:
    """What an analysis type runs: an operation on a fixed number of media (its inputs)."""

    operation: str
    inputs: tuple[str, ...]
    needs: str  # the media it takes, in words, for the error that refuses a wrong choice


TYPES: dict[str, AnalysisType] = {
    "BIOMETRY": AnalysisType("compare", ("image1", "image2"), "two photos"),
    "COLLECTION": AnalysisType(
        "blacklist_check", ("image",), "one photo (or the session's one photo_selfie)"
    ),
}
# Types that are specified (Oz: QUALITY is liveness) but not built yet: NOT_IMPLEMENTED.
PLANNED_TYPES = ("QUALITY", "DOCUMENTS")
SELFIE_TAG = "photo_selfie"


@dataclass(frozen=True)
class AnalysisRequest:
    """One requested analysis: its type and the media ids it names (empty: let the rules
    choose, exactly as when none are named)."""

    type: str
    source_media: tuple[str, ...] = ()


def check_type(kind: str) -> AnalysisType:
    """The analysis type, NOT_IMPLEMENTED for a planned one, else INVALID_ARGUMENT."""
    if kind in PLANNED_TYPES:
        raise FaceplaneError(
            Err.NOT_IMPLEMENTED, f"{kind} analyses are not realized on this server yet.", type=kind
        )
    if kind not in TYPES:
        raise FaceplaneError(
            Err.INVALID_ARGUMENT,
            f"Unknown analysis type {kind!r}; this server runs {', '.join(TYPES)}.",
            type=kind,
        )
    return TYPES[kind]


def analysis_costs(requests: list[AnalysisRequest]) -> dict[str, int]:
    """The credits the analyses cost: one per analysis, named by the operation it runs."""
    return dict(Counter(check_type(r.type).operation for r in requests))


def pick_media(media: list[Media], req: AnalysisRequest) -> list[Media]:
    """The media an analysis runs on: those named, else the session's (its photo_selfie for
    COLLECTION when it has several); a wrong number of them is INVALID_ARGUMENT."""
    kind = check_type(req.type)
    if req.source_media:
        by_id = {m.id: m for m in media}
        missing = [m for m in req.source_media if m not in by_id]
        if missing:
            raise FaceplaneError(
                Err.RESOURCE_NOT_FOUND,
                "`source_media` names media not in this session.",
                field="source_media",
                media=missing,
            )
        chosen = [by_id[m] for m in req.source_media]
    elif req.type == "COLLECTION" and len(media) > 1:
        chosen = [m for m in media if SELFIE_TAG in m.tags]
    else:
        chosen = list(media)
    if len(chosen) != len(kind.inputs):
        raise FaceplaneError(
            Err.INVALID_ARGUMENT,
            f"A {req.type} analysis runs on exactly {kind.needs}; name them in `source_media`.",
            type=req.type,
            media=[m.id for m in chosen],
        )
    return chosen


def start_analyses(
    rt: Runtime,
    company_id: str,
    session_id: str,
    requests: list[AnalysisRequest],
    webhook_url: str | None = None,
) -> list[Analysis]:
    """Queue one task per analysis (all are checked first, so a bad one queues nothing)."""
    store = rt.store
    _, media_rows = load_session_rows(rt, company_id, session_id)
    media = [media_from_row(rt, company_id, m) for m in media_rows]
    plans = []
    for i, req in enumerate(requests):
        try:
            plans.append((req, pick_media(media, req)))
        except FaceplaneError as exc:
            exc.details.setdefault("item", i)  # which of the requested analyses
            raise
    if webhook_url:
        check_url(webhook_url, rt.fetch)
    check_capacity(rt, len(plans), company_id)
    out = []
    for req, chosen in plans:
        kind = TYPES[req.type]
        inputs = dict(zip(kind.inputs, (m.id for m in chosen), strict=True))
        images = {
            name: ImageSource(field=name, data=store.blobs.get(m.blob_key))
            for name, m in zip(kind.inputs, chosen, strict=True)
        }
        task, _ = submit_task(
            rt,
            company_id,
            TaskSpec(kind.operation, images, {}, webhook_url, origin="oz"),
            batch_id=session_id,
        )
        now = time.time()
        record = {
            "id": task["request_id"],
            "session_id": session_id,
            "company_id": company_id,
            "type": req.type,
            "task_id": task["request_id"],
            "inputs_json": json.dumps(inputs),
            "params_json": "{}",
            "created_at": now,
        }
        with write_tx(store.db) as conn:
            conn.execute(session_analyses.insert().values(**record))
            conn.execute(
                update(analysis_sessions)
                .where(analysis_sessions.c.id == session_id)
                .values(updated_at=now)
            )
            [joined] = analysis_rows(conn, company_id, session_analyses.c.id == record["id"])
        analysis = make_analysis(joined, {m.id: m for m in media})
        if webhook_url:  # the task webhook's signing secret, shown only now
            analysis = replace(analysis, webhook_secret=task["webhook"]["secret"])
        out.append(analysis)
    return out


def _analysis_row(rt: Runtime, company_id: str, analysis_id: str) -> dict[str, Any] | None:
    with rt.store.db.connect() as conn:
        found = analysis_rows(conn, company_id, session_analyses.c.id == analysis_id)
    return found[0] if found else None


def get_analysis(rt: Runtime, company_id: str, analysis_id: str) -> Analysis:
    """One analysis of the caller's; a task not started as an analysis does not exist here."""
    from faceplane.services.session_legacy import import_legacy_analysis

    found = _analysis_row(rt, company_id, analysis_id)
    # An analysis started by an earlier version moves into the tables with its folder.
    if found is None and import_legacy_analysis(rt, company_id, analysis_id):
        found = _analysis_row(rt, company_id, analysis_id)
    if found is None:
        raise FaceplaneError(
            Err.RESOURCE_NOT_FOUND, "There is no analysis with this id.", analysis_id=analysis_id
        )
    _, media_rows = load_session_rows(rt, company_id, found["session_id"])
    if found["task_purged"]:
        raise FaceplaneError(
            Err.TASK_EXPIRED,
            "This analysis has expired and its results were deleted.",
            analysis_id=analysis_id,
        )
    media = {m["id"]: media_from_row(rt, company_id, m) for m in media_rows}
    return make_analysis(found, media)
