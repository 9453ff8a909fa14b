"""The AILabTools dialect (seed 001): the JSON envelope with ``error_code`` and ``error_detail``,
and each operation's result in AILab's terms, one renderer per operation for the synchronous
route and the async task alike.

The HTTP status of an error is the one the seed's table gives for the member's
``error_detail.code`` (read from ``catalogue/ailab.tsv``), not the native status: an AILab
client may branch on it, and ``error_code`` must equal it ("otherwise exactly the same as
HTTP Status").
"""

from __future__ import annotations

import functools
from typing import Any

from fastapi.responses import JSONResponse

from faceplane.catalogue import load_vendor_table
from faceplane.errors import Err, FaceplaneError
from faceplane.tasks.state import Status

__all__ = [
    "CODE_STR_VALUES",
    "COMPARE_FIELDS",
    "ENVELOPE_KEYS",
    "TASK_STATUS",
    "analyzer_data",
    "code_row",
    "compare_data",
    "enroll_data",
    "error_code_str",
    "group_data",
    "group_list_data",
    "in_ailab_fields",
    "member_for",
    "operation_data",
    "render_error",
    "render_success",
    "reply",
    "search_data",
    "task_answer",
    "task_error",
    "user_data",
    "user_list_data",
]

# AILab's names for the two sides of a comparison → the native `compare` fields.
COMPARE_FIELDS = {"image_target": "image1", "image_template": "image2"}

# AILab's task_status: 0 queued, 1 processing, 2 done. A failed or revoked task has no status
# of its own there: querying it answers the task's error, as AILab does.
TASK_STATUS = {Status.QUEUED: 0, Status.RUNNING: 1, Status.SUCCEEDED: 2}

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


def reply(request_id: str, data: dict[str, Any]) -> JSONResponse:
    """The AILab success envelope (HTTP 200, error_code 0) with `data` beside it."""
    status, body = render_success(request_id, data)
    return JSONResponse(body, status_code=status)


def in_ailab_fields(exc: FaceplaneError) -> FaceplaneError:
    """Speak of `image_target`/`image_template` where the native compare said image1/image2."""
    for ailab_name, native in COMPARE_FIELDS.items():
        if exc.details.get("field") == native:
            exc.details["field"] = ailab_name
        exc.message = exc.message.replace(f"`{native}`", f"`{ailab_name}`")
    return exc


# ---- each operation's result, as its synchronous route answers it --------------------------


def analyzer_data(out: dict[str, Any]) -> dict[str, Any]:
    """`detect` as the face analyzer: `face_num` before the native fields."""
    return {"face_num": len(out["faces"]), **out}


def compare_data(out: dict[str, Any]) -> dict[str, Any]:
    """`compare` with AILab's names for the face used on each side."""
    data = {k: v for k, v in out.items() if k not in ("face1", "face2")}
    data["face_target"], data["face_template"] = out.get("face1"), out.get("face2")
    return data


def enroll_data(out: dict[str, Any], group_id: str | None, uid: str | None) -> dict[str, Any]:
    """`enroll` as face add: the group and user by name, each face's token, box and quality."""
    return {
        "group_id": group_id,
        "uid": uid,
        "face_token": out["face_token"],
        "faces": [{k: f[k] for k in ("face_token", "box", "quality")} for f in out["faces"]],
        "unindexed": out["unindexed"],
    }


def search_data(out: dict[str, Any], group_id: str | None) -> dict[str, Any]:
    """`search` as AILab's 1:N search: per probe face, `user_list` of uid, token and score."""
    faces = [
        {
            "box": face["box"],
            "threshold": face["threshold"],
            "user_list": [
                {"uid": m["subject_name"], "face_token": m["face_token"], "score": m["similarity"]}
                for m in face["matches"]
            ],
        }
        for face in out["faces"]
    ]
    return {"group_id": group_id, "far": out["far"], "faces": faces}


def operation_data(operation: str, out: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """An operation's result in AILab's shape; `options` as submitted, with AILab's
    `group_id` and `uid` names. Operations without an AILab route keep the native shape."""
    if operation == "detect":
        return analyzer_data(out)
    if operation == "compare":
        return compare_data(out)
    if operation == "enroll":
        return enroll_data(out, options.get("group_id"), options.get("uid"))
    if operation == "search":
        return search_data(out, options.get("group_id"))
    return dict(out)


# ---- the face database ---------------------------------------------------------------------


def group_data(collection: dict[str, Any]) -> dict[str, Any]:
    """A group: a collection named by the caller, with its user and face counts."""
    return {
        "group_id": collection["name"],
        "kind": collection["kind"],
        "user_num": collection["subjects"],
        "face_num": collection["faces"],
        "created_at": collection["created_at"],
    }


def group_list_data(page: dict[str, Any]) -> dict[str, Any]:
    """A page of groups: their names, the groups, and the cursor of the next page."""
    groups = [group_data(c) for c in page["collections"]]
    return {
        "group_id_list": [g["group_id"] for g in groups],
        "groups": groups,
        "next_cursor": page["next_cursor"],
    }


def user_data(subject: dict[str, Any], group_id: str) -> dict[str, Any]:
    """A user: a subject named by the caller, with the `user_info` it was given."""
    return {
        "group_id": group_id,
        "uid": subject["name"],
        "user_info": subject["metadata"].get("user_info"),
        "created_at": subject["created_at"],
    }


def user_list_data(page: dict[str, Any], group_id: str) -> dict[str, Any]:
    """A page of a group's users with their face counts."""
    users = [{"uid": s["name"], "face_num": s["faces"]} for s in page["subjects"]]
    return {"group_id": group_id, "users": users, "next_cursor": page["next_cursor"]}


# ---- async tasks ---------------------------------------------------------------------------


def task_error(task: dict[str, Any]) -> FaceplaneError:
    """The catalogue error a failed task ended with, worded as its synchronous route words it."""
    error = task.get("error") or {}
    err = Err.__members__.get(str(error.get("code")), Err.INTERNAL)
    details = {**(error.get("details") or {}), "task_id": task["request_id"]}
    exc = FaceplaneError(err, error.get("message"), **details)
    return in_ailab_fields(exc) if task["operation"] == "compare" else exc


def task_answer(task: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """A task as AILab reports it: `task_status`, and once done `data` in the shape of the
    operation's synchronous route. A failed task raises its own error; a revoked one
    ERROR_TASK_REVOKED."""
    task_id, status = task["request_id"], Status(task["status"])
    if status is Status.FAILED:
        raise task_error(task)
    if status is Status.CANCELED:
        raise FaceplaneError(Err.TASK_REVOKED, "The task was revoked.", task_id=task_id)
    out: dict[str, Any] = {
        "task_id": task_id,
        "task_status": TASK_STATUS[status],
        "status": status.value,
        "operation": task["operation"],
        "created_at": task["created_at"],
        "finished_at": task["finished_at"],
    }
    if status is Status.SUCCEEDED:
        data = operation_data(task["operation"], task.get("result") or {}, options)
        # Image results (crop) are published as URLs beside the body, as on the native API.
        data.update({k: v for k, v in task.items() if k.endswith("_url")})
        out["data"] = data
    return out
