"""The Linkface dialect (seed 003): JSON ``{"status", "reason", "request_id"}`` and rate headers.

The HTTP status of an error is the one the seed's table gives for its ``status`` name (read
from ``catalogue/linkface.tsv``): RATE_LIMIT_EXCEEDED is 403 there, not 429.

The seed warns that for 404, 413 and 5xx "the body may be empty or not JSON; handle the
parse error". That is a warning to clients about Linkface's proxies, not a format to copy:
a client that copes with a non-JSON body copes with a JSON one, and the JSON one tells it
more. So every body this dialect renders is JSON, 413 included, and no plain-text helper
exists; :func:`body_may_be_non_json` only names the statuses the warning covers, for docs.
"""

from __future__ import annotations

import functools
import math
from typing import Any

from faceplane.catalogue import load_vendor_table
from faceplane.errors import Err, FaceplaneError

__all__ = [
    "IMAGE_STATUSES",
    "RATE_LIMIT_HEADERS",
    "body_may_be_non_json",
    "http_status",
    "member_for",
    "rate_limit_headers",
    "render_detection",
    "render_error",
    "render_face",
    "render_search",
    "render_success",
    "render_verification",
]

RATE_LIMIT_HEADERS: tuple[str, str, str] = (
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
)

# The seed says of these errors "the image concerned is named in the image field".
IMAGE_STATUSES: frozenset[str] = frozenset(
    {
        "DOWNLOAD_TIMEOUT",
        "DOWNLOAD_ERROR",
        "IMAGE_FILE_SIZE_TOO_BIG",
        "IMAGE_ID_NOT_EXIST",
        "NO_FACE_DETECTED",
        "CORRUPT_IMAGE",
        "INVALID_IMAGE_FORMAT_OR_SIZE",
    }
)


@functools.cache
def _table() -> dict[str, int]:
    rows = {}
    for row in load_vendor_table("linkface"):
        assert row.http_status is not None
        rows[row.code] = row.http_status
    return rows


def http_status(name: str) -> int:
    """The HTTP status the seed's table gives for a Linkface ``status`` name."""
    try:
        return _table()[name]
    except KeyError:
        raise ValueError(f"{name!r} is not a Linkface status") from None


def _image(exc: FaceplaneError) -> str | None:
    # Faceplane's services name the request field of the image in `field` (or `image`).
    for key in ("image", "field"):
        value = exc.details.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def render_error(request_id: str, exc: FaceplaneError) -> tuple[int, dict[str, Any]]:
    """Return (HTTP status, body) for an error in the Linkface dialect."""
    name = exc.err.linkface
    body: dict[str, Any] = {"status": name, "reason": exc.message, "request_id": request_id}
    image = _image(exc) if name in IMAGE_STATUSES else None
    if image is not None:
        body["image"] = image
    return http_status(name), body


def render_success(request_id: str, data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """Return (200, body): ``status: "OK"`` and ``request_id`` with the data fields."""
    clash = sorted(set(data) & {"status", "request_id"})
    if clash:
        raise ValueError(f"data fields {clash} would overwrite the Linkface envelope")
    return 200, {"status": "OK", "request_id": request_id, **data}


def rate_limit_headers(limit: int, remaining: int, reset_s: float) -> dict[str, str]:
    """The three X-RateLimit-* headers; Reset is whole seconds until the window resets."""
    # The seed's example reads "Reset: 5" as "the counter resets in 5 seconds": a duration,
    # not an epoch time. Rounding up keeps a client from retrying a moment too early.
    values = (max(0, int(limit)), max(0, int(remaining)), max(0, math.ceil(reset_s)))
    return {name: str(value) for name, value in zip(RATE_LIMIT_HEADERS, values, strict=True)}


def body_may_be_non_json(status: int) -> bool:
    """Whether the seed lets a Linkface body at this status be non-JSON (404, 413, 5xx)."""
    return status in (404, 413) or 500 <= status <= 599


def member_for(err: Err) -> tuple[int, str]:
    """(HTTP status, status name) a member renders as; for docs."""
    return http_status(err.linkface), err.linkface


# ---- the answers of the routes (the operation's native body → Linkface's fields) -----------


def render_face(face: dict[str, Any]) -> dict[str, Any]:
    """One detected face: ``rect {left, top, right, bottom}``, confidence, landmarks, pose."""
    b = face["box"]
    out = {
        "rect": {
            "left": round(b["x"]),
            "top": round(b["y"]),
            "right": round(b["x"] + b["width"]),
            "bottom": round(b["y"] + b["height"]),
        },
        "confidence": face["score"],
        "landmarks": list(face["landmarks"].values()),  # Linkface: [x, y] points in order
        "yaw": face["quality"]["yaw"],
        "pitch": face["quality"]["pitch"],
        "roll": face["quality"]["roll"],
        "quality": face["quality"],
    }
    if "embedding" in face:
        out["feature"] = face["embedding"]
    return out


def render_detection(request_id: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """The detection answer: ``faces`` and the ``image`` size."""
    faces = [render_face(f) for f in body["faces"]]
    return render_success(request_id, {"faces": faces, "image": body["image"]})


def render_verification(request_id: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """The verification answer: ``confidence`` (calibrated similarity), ``is_same_person``,
    ``threshold``, ``distance`` and ``far`` (the false-accept rate of the score)."""
    return render_success(
        request_id,
        {
            "confidence": body["similarity"],
            "is_same_person": body["match"],
            "threshold": body["threshold"],
            "distance": body["distance"],
            "far": body.get("far"),
        },
    )


def render_search(request_id: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """The search answer: ``candidates`` for the largest face, best first, and the threshold."""
    face = body["faces"][0]
    candidates = [
        {
            "person_id": m["subject_id"],
            "name": m["subject_name"],
            "face_id": m["face_token"],
            "confidence": m["similarity"],
        }
        for m in face["matches"]
    ]
    return render_success(request_id, {"candidates": candidates, "threshold": face["threshold"]})
