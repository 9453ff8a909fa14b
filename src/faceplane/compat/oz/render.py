"""The Oz Forensics dialect (seeds 002/004): ``{error_code, error_message, details}``.

The Oz seeds give no HTTP status per error code, only that 2xx/4xx/5xx mean success, client
error and server error, that code 1 "usually is followed by the 405 HTTP status" and that
code 10 is the "alternative of HTTP status_code = 404". So an error keeps its native status,
which agrees with those hints (a contract test checks it).

Analysis states and resolutions: seed 004 names the page ("Статусы API") only in its table of
contents. The spellings below are Oz's public "Statuses in API" page:
``analyse.state`` is PROCESSING | FAILED | FINISHED; ``analyse.resolution_status`` is
SUCCESS | DECLINED | OPERATOR_REQUIRED once finished, and inherits PROCESSING | FAILED from
the state before that.

Folders, media and analyses are rendered from the analysis sessions service
(faceplane.services.sessions): an Oz folder is a session, so "session" in an error becomes
"folder" and a `session_id` detail a `folder_id`.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any, Literal

from faceplane.errors import Err, FaceplaneError

if TYPE_CHECKING:  # the renderer only reads these records; it needs none of their machinery
    from faceplane.services.logins import Login
    from faceplane.services.sessions import Analysis, Media, Session

__all__ = [
    "RESOLUTIONS",
    "STATES",
    "AnalysisState",
    "Resolution",
    "analysis_state",
    "render_analysis",
    "render_error",
    "render_folder",
    "render_login",
    "render_media",
    "resolution",
]

AnalysisState = Literal["PROCESSING", "FINISHED", "FAILED"]
Resolution = Literal["PROCESSING", "FAILED", "SUCCESS", "DECLINED", "OPERATOR_REQUIRED"]
STATES: tuple[str, ...] = ("PROCESSING", "FINISHED", "FAILED")
RESOLUTIONS: tuple[str, ...] = ("PROCESSING", "FAILED", "SUCCESS", "DECLINED", "OPERATOR_REQUIRED")

# Faceplane's task statuses (faceplane.tasks.state.Status). Oz has no "canceled": a canceled
# analysis "couldn't get finished", which is Oz's FAILED.
_STATE: dict[str, AnalysisState] = {
    "queued": "PROCESSING",
    "running": "PROCESSING",
    "succeeded": "FINISHED",
    "failed": "FAILED",
    "canceled": "FAILED",
}


_SESSION = re.compile(r"\bsession(s?)\b")
_DETAIL_NAMES = {"session_id": "folder_id"}


def _oz_words(message: str) -> str:
    """A message in Oz's words: a session is a folder (`session_token` and "Session Token",
    Oz's own terms, are left alone)."""
    return _SESSION.sub(r"folder\1", message)


def render_error(exc: FaceplaneError) -> tuple[int, dict[str, Any]]:
    """Return (HTTP status, body) for an error in the Oz dialect."""
    details = {_DETAIL_NAMES.get(k, k): v for k, v in exc.details.items()}
    body = {
        "error_code": exc.err.oz,
        "error_message": _oz_words(exc.message),
        # The seed's sample shows "details": null when there is nothing to add.
        "details": details or None,
    }
    return exc.err.http, body


def analysis_state(task_status: str) -> AnalysisState:
    """Oz's ``analyse.state`` for a Faceplane task status."""
    try:
        return _STATE[task_status]
    except KeyError:
        raise ValueError(f"unknown task status {task_status!r}") from None


def resolution(
    task_status: str, passed: bool | None = None, operator_required: bool = False
) -> Resolution:
    """Oz's ``analyse.resolution_status``: the verdict once finished, else the state."""
    state = analysis_state(task_status)
    if state == "PROCESSING":
        return "PROCESSING"
    if state == "FAILED":
        return "FAILED"
    if operator_required:
        # Oz: only where biometry settings ask for it, and never for Liveness; the caller knows.
        return "OPERATOR_REQUIRED"
    if passed is None:
        raise ValueError("a finished analysis needs a verdict (passed=True or False)")
    return "SUCCESS" if passed else "DECLINED"


def render_login(login: Login) -> dict[str, Any]:
    """Oz's answer to a login or a renewal: the token pair, its expiry and the user."""
    user = login.user
    return {
        "access_token": login.tokens["access_token"],
        # Oz's expire_token is what renews the pair (POST /authorize/refresh/): ours is the
        # refresh token.
        "expire_token": login.tokens["refresh_token"],
        "expire_date": round(time.time() + login.tokens["expires_in"], 3),
        "user": {
            "user_id": user["id"],
            "email": user["email"],
            "company_id": user["company_id"],
            "user_type": user["role"].upper(),
            "is_admin": user["role"] == "admin",
            "is_service": False,
        },
    }


def render_media(media: Media) -> dict[str, Any]:
    """A media in Oz's shape (photos only: IMAGE_FOLDER)."""
    return {
        "media_id": media.id,
        "folder_id": media.session_id,
        "media_type": "IMAGE_FOLDER",
        "original_name": media.original_name,
        "original_url": media.url,
        "tags": media.tags,
        "time_created": round(media.created_at, 3),
        "time_updated": round(media.created_at, 3),
        "meta_data": media.metadata,
        "technical_meta_data": {"size_bytes": media.size_bytes, "sha256": media.sha256},
    }


def _verdict(kind: str, result: dict[str, Any]) -> tuple[bool, dict[str, Any], dict[str, Any]]:
    """(passed, results_data, Faceplane's own measures) of a finished analysis."""
    if kind == "BIOMETRY":
        sim = result["similarity"]
        measures = {"threshold": result["threshold"], "model": result["model"]}
        # The FAR of the score and of the threshold (results stored before the FAR-calibrated
        # scale have neither).
        measures.update({k: result[k] for k in ("far", "threshold_far") if k in result})
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


def render_analysis(analysis: Analysis) -> dict[str, Any]:
    """An analysis in Oz's shape; a failed one adds `error_code` and `error_message`."""
    passed: bool | None = None
    data: dict[str, Any] | None = None
    measures: dict[str, Any] = {}
    if analysis.status == "succeeded" and analysis.result is not None:
        passed, data, measures = _verdict(analysis.type, analysis.result)
    if analysis.webhook_secret:
        measures["webhook_secret"] = analysis.webhook_secret
    out: dict[str, Any] = {
        # Oz's pages spell the id both ways (analyse_id, analysis_id): both are given.
        "analyse_id": analysis.id,
        "analysis_id": analysis.id,
        "folder_id": analysis.session_id,
        "type": analysis.type,
        "state": analysis_state(analysis.status),
        "resolution_status": resolution(analysis.status, passed),
        "results_data": data,
        "results_media": [],
        "source_media": [render_media(m) for m in analysis.source_media],
        "time_created": round(analysis.created_at, 3),
        "time_updated": round(analysis.updated_at, 3),
        "technical_meta_data": measures,
    }
    if analysis.error is not None:
        err = Err.__members__.get(analysis.error.get("code", ""), Err.INTERNAL)
        out["error_code"] = err.oz
        out["error_message"] = _oz_words(analysis.error.get("message") or err.message)
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


def render_folder(session: Session) -> dict[str, Any]:
    """A folder in Oz's shape, with its media and analyses."""
    analyses = [render_analysis(a) for a in session.analyses]
    created = round(session.created_at, 3)
    return {
        "folder_id": session.id,
        "company_id": session.company_id,
        "time_created": created,
        "time_updated": max([round(session.updated_at, 3), *(a["time_updated"] for a in analyses)]),
        "meta_data": session.metadata,
        "technical_meta_data": {},
        "resolution_status": _folder_status(analyses),
        "media": [render_media(m) for m in session.media],
        "analyses": analyses,
    }
