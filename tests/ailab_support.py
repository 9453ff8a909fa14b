"""The AILabTools seed's envelope, checked field by field: shared by the AILab route tests."""

from __future__ import annotations

import io
from typing import Any

from httpx import Response
from PIL import Image

from faceplane.compat.ailab.render import code_row

DEEPFACE = "faces/deepface/images"
# Real photos in which no face is found (a dog, and a sample without a detectable face).
NO_FACE_PHOTOS = (
    "faces/dlib/examples/faces/dogs.jpg",
    "faces/compreface/embedding-calculator/sample_images/017_0.jpg",
)
BASE = "/compat/ailab/api"
ANALYZER = f"{BASE}/portrait/analysis/face-analyzer"
COMPARE = f"{BASE}/portrait/analysis/face-compare"
BEAUTY = f"{BASE}/portrait/effects/face-beauty"
SWAP = f"{BASE}/portrait/effects/face-swap"
SUBMIT = f"{BASE}/common/async-task"
QUERY = f"{BASE}/common/query-async-task-result"
REVOKE = f"{BASE}/common/revoke-async-task"
DB = f"{BASE}/face"
NO_CREDENTIALS = {"X-API-Key": ""}

# The seed's table: error_detail.code → (HTTP status, code_message, error_code_str).
SEED = {
    "ERROR_LEFT_EYE_OCCLUSION_TOO_HIGH": (
        422,
        "Left eye occlusion too high.",
        "FILE_CONTENT_NON_COMPLIANCE",
    ),
    "ERROR_FACE_NOT_FACING_FORWARD": (
        422,
        "Face not facing forward.",
        "FILE_CONTENT_NON_COMPLIANCE",
    ),
    "MISSING_PARAMETERS": (400, "Missing parameters.", "MISSING_PARAMETERS"),
    "PARAMETERS_CANNOT_EMPTY": (400, "Parameters cannot be empty.", "PARAMETERS_CANNOT_EMPTY"),
    "ERROR_PARAMETERS": (400, "Invalid parameters.", "ERROR_PARAMETERS"),
    "FILE_DECODING_FAILURE": (400, "File decoding failed.", "FILE_DECODING_FAILURE"),
    "ERROR_NO_FACE_IN_FILE": (
        422,
        "No face detected in the file.",
        "FILE_CONTENT_NON_COMPLIANCE",
    ),
    "ERROR_USER_NOT_EXISTS": (401, "The user does not exist.", "ERROR_USER_NOT_EXISTS"),
    "ERROR_AI_NOT_EXISTS": (
        404,
        "AI does not exist or has been deactivated, please contact the platform.",
        "ERROR_AI_NOT_EXISTS",
    ),
    "ERROR_ILLEGAL_OPERATION": (405, "Illegal operation.", "ERROR_ILLEGAL_OPERATION"),
    "ERROR_USER_GROUP_ALREADY_EXISTS": (
        409,
        "User group already exists.",
        "ERROR_USER_GROUP_ALREADY_EXISTS",
    ),
    "ERROR_USER_ALREADY_EXISTS": (409, "User already exists.", "ERROR_USER_ALREADY_EXISTS"),
    "ERROR_USER_GROUP_NOT_FOUND": (404, "User group not found.", "ERROR_USER_GROUP_NOT_FOUND"),
    "ERROR_USER_NOT_FOUND": (404, "User not found.", "ERROR_USER_NOT_FOUND"),
    "ERROR_FACE_TOKEN_NOT_FOUND": (404, "Face token not found.", "ERROR_FACE_TOKEN_NOT_FOUND"),
    "ERROR_RESOURCE_NOT_FOUND": (404, "Resource not found.", "ERROR_RESOURCE_NOT_FOUND"),
    "ERROR_RESOURCE_RECLAIMED": (410, "Resource has been reclaimed.", "ERROR_RESOURCE_RECLAIMED"),
    "ERROR_TASK_REVOKED": (409, "Task has already been revoked.", "ERROR_TASK_REVOKED"),
    "ERROR_TASK_REVOCATION_FAILED": (
        400,
        "Task revocation failed.",
        "ERROR_TASK_REVOCATION_FAILED",
    ),
    "ERROR_INVALID_BIG_EYES_PARAMETER": (
        422,
        "Big eyes parameter does not meet requirements.",
        "UNSUPPORTED_PARAMETER_VALUES",
    ),
    "ERROR_INVALID_FACE_SLIMMING_PARAMETER": (
        422,
        "Face slimming parameter does not meet requirements.",
        "UNSUPPORTED_PARAMETER_VALUES",
    ),
    "ERROR_INVALID_SMOOTHING_PARAMETER": (
        422,
        "Smoothing parameter does not meet requirements.",
        "UNSUPPORTED_PARAMETER_VALUES",
    ),
    "ERROR_INVALID_SKIN_WHITENING_PARAMETER": (
        422,
        "Skin whitening parameter does not meet requirements.",
        "UNSUPPORTED_PARAMETER_VALUES",
    ),
}


def blank_png() -> bytes:
    """A flat grey picture: a readable image with no face."""
    buf = io.BytesIO()
    Image.new("RGB", (160, 160), (90, 100, 110)).save(buf, format="PNG")
    return buf.getvalue()


def ok(resp: Response) -> dict[str, Any]:
    """Check the seed's success envelope; return the body."""
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    rid = resp.headers["x-request-id"]
    assert list(body)[:4] == ["request_id", "log_id", "error_code", "error_detail"]
    assert body["request_id"] == rid and body["log_id"] == rid
    assert body["error_code"] == 0
    assert body["error_detail"] == {
        "status_code": 200,
        "code": "",
        "code_message": "",
        "message": "",
    }
    assert "error_code_str" not in body and "error_msg" not in body
    return body


def failed(resp: Response, code: str, message: str | None = None) -> dict[str, Any]:
    """Check every field of the seed's error envelope for `code`; return the body."""
    status, code_message, code_str = SEED[code]
    assert resp.status_code == status, resp.text
    body: dict[str, Any] = resp.json()
    rid = resp.headers["x-request-id"]
    assert list(body) == [
        "request_id",
        "log_id",
        "error_code",
        "error_detail",
        "error_code_str",
        "error_msg",
    ]
    assert body["request_id"] == rid and body["log_id"] == rid
    assert body["error_code"] == status
    detail = body["error_detail"]
    assert list(detail) == ["status_code", "code", "code_message", "message"]
    assert (detail["status_code"], detail["code"]) == (status, code)
    assert detail["code_message"] == code_message
    assert detail["message"] and (message is None or detail["message"] == message)
    assert body["error_code_str"] == code_str
    assert body["error_msg"] == f"{code_row(code_str)[1]} - {detail['message']}"
    return body
