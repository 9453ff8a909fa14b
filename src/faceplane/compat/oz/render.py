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
"""

from __future__ import annotations

from typing import Any, Literal

from faceplane.errors import FaceplaneError

__all__ = [
    "RESOLUTIONS",
    "STATES",
    "AnalysisState",
    "Resolution",
    "analysis_state",
    "render_error",
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


def render_error(exc: FaceplaneError) -> tuple[int, dict[str, Any]]:
    """Return (HTTP status, body) for an error in the Oz dialect."""
    # The seed's sample shows "details": null when there is nothing to add.
    details = dict(exc.details) or None
    body = {"error_code": exc.err.oz, "error_message": exc.message, "details": details}
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
