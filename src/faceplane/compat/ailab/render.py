"""The AILabTools dialect (seed 001): the JSON envelope with ``error_code`` and ``error_detail``.

The HTTP status of an error is the one the seed's table gives for the member's
``error_detail.code`` (read from ``catalogue/ailab.tsv``), not the native status: an AILab
client may branch on it, and ``error_code`` must equal it ("otherwise exactly the same as
HTTP Status").
"""

from __future__ import annotations

import functools
from typing import Any

from faceplane.catalogue import load_vendor_table
from faceplane.errors import Err, FaceplaneError

__all__ = [
    "CODE_STR_VALUES",
    "ENVELOPE_KEYS",
    "code_row",
    "error_code_str",
    "member_for",
    "render_error",
    "render_success",
]

ENVELOPE_KEYS: tuple[str, ...] = (
    "request_id",
    "log_id",
    "error_code",
    "error_detail",
    "error_code_str",
    "error_msg",
)

# The values of the deprecated error_code_str, from the seed's "Parsing of error_code_str".
CODE_STR_VALUES: frozenset[str] = frozenset(
    {
        "ERROR_USER_NOT_EXISTS",
        "ERROR_USER_LOCKED",
        "ERROR_APPLICATIONS_NOT_EXISTS",
        "ERROR_AI_NOT_EXISTS",
        "ERROR_NOT_ENOUGH_CREDITS",
        "ERROR_PARAMETERS",
        "MISSING_PARAMETERS",
        "FILE_SIZE_EXCEEDS_LIMIT",
        "FILE_RESOLUTION_EXCEEDS_LIMITS",
        "UNSUPPORTED_FILE_TYPES",
        "PARAMETERS_CANNOT_EMPTY",
        "UNSUPPORTED_PARAMETER_VALUES",
        "FILE_DECODING_FAILURE",
        "FILE_CONTENT_NON_COMPLIANCE",
        "EXCEEDING_LIMITS",
        "PROCESSING_FAILURE",
        "ERROR_GATEWAY",
        "UNKNOWN_ERROR",
        "SERVICE_INTERNAL_ERROR",
        "FILE_SERVICE_ERROR",
        "AI_SERVICE_ERROR",
        "AI_SERVICE_FLOW_RESTRICTION",
        "AI_SERVICE_TIMEOUT",
    }
)

# A precise code with no error_code_str of its own gets the coarse value of its HTTP status,
# where the seed's error_code_str table has one for that status. The seed's own example maps
# ERROR_NO_FACE_IN_FILE (422) to FILE_CONTENT_NON_COMPLIANCE.
_CODE_STR_BY_STATUS: dict[int, str] = {
    413: "FILE_SIZE_EXCEEDS_LIMIT",
    415: "UNSUPPORTED_FILE_TYPES",
    422: "FILE_CONTENT_NON_COMPLIANCE",
    429: "ERROR_NOT_ENOUGH_CREDITS",
    500: "SERVICE_INTERNAL_ERROR",
    502: "ERROR_GATEWAY",
    503: "AI_SERVICE_FLOW_RESTRICTION",
    504: "AI_SERVICE_TIMEOUT",
}
# 422 mixes parameter, resolution and content failures: these are the parameter and
# resolution ones; every other 422 is about the file's content, like the seed's example.
_CODE_STR_422: dict[str, str] = {
    **dict.fromkeys(
        (
            "ERROR_INVALID_FACE_BOX_PARAMETER",
            "ERROR_INVALID_BIG_EYES_PARAMETER",
            "ERROR_INVALID_FACE_SLIMMING_PARAMETER",
            "ERROR_INVALID_SMOOTHING_PARAMETER",
            "ERROR_INVALID_SKIN_WHITENING_PARAMETER",
            "ERROR_INVALID_PARAMETER_FORMAT",
            "ERROR_PARAMETER_CONVERSION_FAILED",
            "ERROR_MISSING_OUTPUT_FORMAT",
        ),
        "UNSUPPORTED_PARAMETER_VALUES",
    ),
    "ERROR_LOW_RESOLUTION": "FILE_RESOLUTION_EXCEEDS_LIMITS",
    "ERROR_HIGH_RESOLUTION": "FILE_RESOLUTION_EXCEEDS_LIMITS",
}


@functools.cache
def _table() -> dict[str, tuple[int, str]]:
    rows = {}
    for row in load_vendor_table("ailab"):
        assert row.http_status is not None
        rows[row.code] = (row.http_status, row.description)
    return rows


def code_row(code: str) -> tuple[int, str]:
    """(HTTP status, description) of an ``error_detail.code`` in the seed's table."""
    try:
        return _table()[code]
    except KeyError:
        raise ValueError(f"{code!r} is not an AILabTools error_detail.code") from None


def error_code_str(code: str) -> str:
    """The deprecated coarse ``error_code_str`` for a precise code; never empty on an error."""
    if code in CODE_STR_VALUES:
        return code
    status, _ = code_row(code)
    if code in _CODE_STR_422:
        return _CODE_STR_422[code]
    # Where the seed has no coarse value, the precise code itself: an empty or absent
    # error_code_str means success to clients that still read it.
    return _CODE_STR_BY_STATUS.get(status, code)


def render_error(
    request_id: str, exc: FaceplaneError, log_id: str | None = None
) -> tuple[int, dict[str, Any]]:
    """Return (HTTP status, body) for an error in the AILabTools dialect."""
    code = exc.err.ailab
    status, code_message = code_row(code)
    coarse = error_code_str(code)
    body: dict[str, Any] = {
        "request_id": request_id,
        # Faceplane logs by request id, so the log id a client quotes to support is the same.
        "log_id": request_id if log_id is None else log_id,
        "error_code": status,
        "error_detail": {
            "status_code": status,
            "code": code,
            "code_message": code_message,
            "message": exc.message,
        },
        "error_code_str": coarse,
        # The seed's form is "<description> - <internal number> - <message>"; Faceplane has
        # no internal number, so that part is left out.
        "error_msg": f"{code_row(coarse)[1]} - {exc.message}",
    }
    return status, body


def render_success(
    request_id: str, data: dict[str, Any], log_id: str | None = None
) -> tuple[int, dict[str, Any]]:
    """Return (200, body): the success envelope with the data fields beside it."""
    clash = sorted(set(data) & set(ENVELOPE_KEYS))
    if clash:
        raise ValueError(f"data fields {clash} would overwrite the AILabTools envelope")
    body: dict[str, Any] = {
        "request_id": request_id,
        "log_id": request_id if log_id is None else log_id,
        "error_code": 0,
        "error_detail": {"status_code": 200, "code": "", "code_message": "", "message": ""},
        **data,
    }
    return 200, body


def member_for(err: Err) -> tuple[int, str, str]:
    """(HTTP status, error_detail.code, error_code_str) a member renders as; for docs."""
    status, _ = code_row(err.ailab)
    return status, err.ailab, error_code_str(err.ailab)
