"""The Pho.to dialect (seed 000): the ``<image_process_response>`` XML (``parse`` reads calls).

Pho.to reports every outcome inside the XML body: ``<status>`` is ``OK``, ``InProgress``,
``Error``, ``SecurityError`` or ``WrongID`` and ``<err_code>`` carries the number. The seed
names no HTTP status for any of them, so every answer is HTTP 200 (:data:`HTTP_STATUS`):
clients written against Pho.to read ``<status>``, and many HTTP libraries raise on a 4xx/5xx
before the body is read, which would break exactly the clients this dialect exists for.
"""

from __future__ import annotations

import re
from typing import Any

from faceplane.errors import Err, FaceplaneError

__all__ = [
    "HTTP_STATUS",
    "MEDIA_TYPE",
    "TAGS",
    "URL_TAGS",
    "photo_status",
    "render_added",
    "render_error",
    "render_task",
]

HTTP_STATUS = 200
# text/xml without a charset defaults to US-ASCII (RFC 3023), so the charset is explicit.
MEDIA_TYPE = "text/xml; charset=utf-8"

# The seed's common response, in its order; an answer holds a subset of these, never others.
TAGS: tuple[str, ...] = (
    "request_id",
    "status",
    "description",
    "err_code",
    "result_url",
    "thumb1_url",
    "thumb2_url",
    "thumb_ini1_url",
    "thumb_ini2_url",
)
URL_TAGS: tuple[str, ...] = TAGS[4:]  # present only when the task produced that image

# "WrongID: There is no task with such REQUEST_ID." An expired task is gone too, and telling a
# Pho.to client "SecurityError" for it would send it to check its credentials.
_WRONG_ID = frozenset({Err.TASK_NOT_FOUND, Err.TASK_EXPIRED})

ADDED_DESCRIPTION = "The task was added to the queue."
DONE_DESCRIPTION = "The task is complete."
IN_PROGRESS_DESCRIPTION = "The task is in progress, you need to wait for some time."

# Characters XML 1.0 cannot carry at all, even escaped; a message must never make the body
# unparseable, so they become U+FFFD.
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _text(value: object) -> str:
    text = _NOT_XML_CHAR.sub("\ufffd", str(value))
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    # A raw CR would be read back as LF; the character reference keeps it exact.
    return text.replace("\r", "&#13;")


def _response(fields: list[tuple[str, object]]) -> str:
    """Serialise tags in the seed's layout; values are escaped, tags come only from TAGS."""
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', "<image_process_response>"]
    for tag, value in fields:
        assert tag in TAGS, tag
        lines.append(f"    <{tag}>{_text(value)}</{tag}>")
    lines.append("</image_process_response>")
    return "\n".join(lines) + "\n"


def photo_status(err: Err) -> tuple[str, int]:
    """The (status, err_code) this dialect renders for a member: WrongID for a missing task."""
    status, code = err.photo
    return ("WrongID" if err in _WRONG_ID else status), code


def render_error(request_id: str | None, exc: FaceplaneError) -> tuple[int, str]:
    """Return (HTTP status, XML body) for an error in the Pho.to dialect."""
    status, code = photo_status(exc.err)
    fields: list[tuple[str, object]] = [] if request_id is None else [("request_id", request_id)]
    fields += [("status", status), ("description", exc.message), ("err_code", code)]
    return HTTP_STATUS, _response(fields)


def render_added(request_id: str) -> str:
    """The answer to an accepted add-task request: status OK, err_code 0."""
    return _response(
        [
            ("request_id", request_id),
            ("status", "OK"),
            ("description", ADDED_DESCRIPTION),
            ("err_code", 0),
        ]
    )


def render_task(task: dict[str, Any]) -> str:
    """The getresult answer for a native task rendering (``services.tasks.render_task``)."""
    request_id = str(task["request_id"])
    status = task["status"]
    if status == "succeeded":
        fields: list[tuple[str, object]] = [
            ("request_id", request_id),
            ("status", "OK"),
            ("description", DONE_DESCRIPTION),
            ("err_code", 0),
        ]
        fields += [(tag, task[tag]) for tag in URL_TAGS if task.get(tag)]
        return _response(fields)
    if status in ("queued", "running"):
        return _response(
            [
                ("request_id", request_id),
                ("status", "InProgress"),
                ("description", IN_PROGRESS_DESCRIPTION),
                ("err_code", 0),
            ]
        )
    if status == "failed":
        error = task.get("error") or {}
        # A code this server no longer knows is still a failure; INTERNAL is the honest floor.
        err = Err.__members__.get(str(error.get("code")), Err.INTERNAL)
        message = error.get("message") or err.message
        return render_error(request_id, FaceplaneError(err, str(message)))[1]
    if status == "canceled":
        # Pho.to has no cancel; TASK_REVOKED is the catalogue's member for a canceled task.
        return render_error(request_id, FaceplaneError(Err.TASK_REVOKED))[1]
    raise ValueError(f"unknown task status {status!r}")
