"""What an answer of the server must look like: no server error, and every error in the
catalogue's shape of the route's dialect (native, Pho.to, AILab, Linkface, Oz) with the request
id. The fuzz tests judge each answer with `answer_problem`; the shapes are those of the dialect
renderers (`faceplane.api.render`, `faceplane.compat.*.render`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from defusedxml import ElementTree

from faceplane.compat.photo.render import photo_status
from faceplane.errors import Err


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _native_error(status: int, body: Any, rid: str) -> str | None:
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict) or body.get("request_id") != rid:
        return "not a native error body with the request id"
    member = Err.__members__.get(str(error.get("code")))
    if member is None:
        return f"error code {error.get('code')!r} is not in the catalogue"
    if member.value.http != status:
        return f"{member.name} answered HTTP {status}, the catalogue says {member.value.http}"
    return None


def _ailab_error(status: int, body: Any, rid: str) -> str | None:
    detail = body.get("error_detail") if isinstance(body, dict) else None
    codes = {e.value.ailab for e in Err}
    if not isinstance(detail, dict) or body.get("request_id") != rid:
        return "not an AILab error body with the request id"
    if body.get("error_code") != status:
        return f"AILab error_code {body.get('error_code')!r} on HTTP {status}"
    return None if detail.get("code") in codes else f"AILab code {detail.get('code')!r} unknown"


def _linkface_error(status: int, body: Any, rid: str) -> str | None:
    if not isinstance(body, dict) or body.get("request_id") != rid:
        return "not a Linkface error body with the request id"
    codes = {e.value.linkface for e in Err}
    return None if body.get("status") in codes else f"Linkface status {body.get('status')!r}"


def _oz_error(status: int, body: Any, rid: str) -> str | None:
    if not isinstance(body, dict) or not isinstance(body.get("error_message"), str):
        return "not an Oz error body"
    codes = {e.value.oz for e in Err}
    return None if body.get("error_code") in codes else f"Oz code {body.get('error_code')!r}"


_PHOTO_ERRORS = {photo_status(e) for e in Err}
_PHOTO_INTERNAL = photo_status(Err.INTERNAL)


def _photo_answer(text: str, rid: str) -> str | None:
    """Pho.to answers every outcome as HTTP 200 XML; an error status must be a catalogue one."""
    try:
        root = ElementTree.fromstring(text.encode())
    except Exception:
        return "not well-formed XML"
    fields = {child.tag: (child.text or "") for child in root}
    status = fields.get("status")
    if root.tag != "image_process_response" or status is None:
        return "not an <image_process_response> with a <status>"
    if status in ("OK", "InProgress"):
        return None
    # WrongID names the id the client asked for (or none when it sent none), as Pho.to does.
    if status != "WrongID" and fields.get("request_id") != rid:
        return "a Pho.to error without the request id"
    code = fields.get("err_code", "")
    if not code.lstrip("-").isdigit():
        return f"a Pho.to error with err_code {code!r}"
    pair = (status, int(code))
    if pair == _PHOTO_INTERNAL:
        return "Pho.to answered INTERNAL (a server error)"
    return None if pair in _PHOTO_ERRORS else f"Pho.to error {pair} is not in the catalogue"


_DIALECTS: tuple[tuple[str, Callable[[int, Any, str], str | None]], ...] = (
    ("/compat/ailab/", _ailab_error),
    ("/compat/linkface/", _linkface_error),
    ("/compat/oz/", _oz_error),
)


def answer_problem(path: str, status: int, headers: Any, text: str) -> str | None:
    """What is wrong with an answer, or None: a server error, or a malformed error body."""
    rid = headers.get("x-request-id")
    # schemathesis gives each header as a list of values, requests as one string.
    rid = rid[0] if isinstance(rid, list) and rid else rid
    if not rid:
        return "no X-Request-Id header"
    if status >= 500 and status != 501:
        return f"HTTP {status}"
    if path.startswith("/compat/photo/"):
        return _photo_answer(text, rid) if status == 200 else _photo_not_200(status, text, rid)
    if status < 400:
        return None
    body = _json(text)
    for prefix, check in _DIALECTS:
        if path.startswith(prefix):
            return check(status, body, rid)
    return _native_error(status, body, rid)


def _photo_not_200(status: int, text: str, rid: str) -> str | None:
    problem = _photo_answer(text, rid)
    return None if problem is None else f"HTTP {status} from Pho.to: {problem}"
