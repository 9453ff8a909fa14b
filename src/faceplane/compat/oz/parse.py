"""Read Oz requests: JSON bodies, ids, folder uploads and analysis requests.

Seed 004: a missing field or a body "in an incorrect format" is INVALID STRUCTURE (3), a
field of the wrong type INVALID TYPE (5), a bad value (such as a string that should be a UUID)
INVALID VALUE (4).
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import Request
from starlette.datastructures import UploadFile

from faceplane.api.inputs import read_json
from faceplane.errors import Err, FaceplaneError
from faceplane.json_input import NOT_JSON, parse_json
from faceplane.services.session_analyses import AnalysisRequest, check_type
from faceplane.services.sessions import Upload

MAX_ANALYSES = 10


def parse_id(value: str, name: str) -> str:
    """An Oz id as 32 hex digits; a string that is no UUID is Oz's INVALID VALUE (4)."""
    try:
        return uuid.UUID(value).hex
    except ValueError:
        raise FaceplaneError(Err.INVALID_ARGUMENT, f"`{name}` is not a UUID.", field=name) from None


async def read_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object (through the one bounded parser)."""
    try:
        body = await read_json(request)
    except FaceplaneError as exc:
        if exc.details.get("reason") not in NOT_JSON:
            raise  # too deep, too large, or text no encoder takes: refused as such
        body = None
    if not isinstance(body, dict):
        raise FaceplaneError(Err.MISSING_ARGUMENT, "The body must be a JSON object.")
    return body


def read_text(obj: dict[str, Any], name: str, where: str = "") -> str:
    """A required string field: missing is INVALID STRUCTURE (3), not a string INVALID TYPE (5)."""
    shown = f"{where}.{name}" if where else name
    value = obj.get(name)
    if value is None:
        raise FaceplaneError(Err.MISSING_ARGUMENT, f"`{shown}` is required.", field=shown)
    if not isinstance(value, str):
        raise FaceplaneError(Err.INVALID_TYPE, f"`{shown}` must be a string.", field=shown)
    return value


def read_credentials(body: dict[str, Any]) -> tuple[str, str]:
    """The email and password of `credentials`."""
    creds = body.get("credentials")
    if creds is None:
        raise FaceplaneError(
            Err.MISSING_ARGUMENT, "`credentials` is required.", field="credentials"
        )
    if not isinstance(creds, dict):
        raise FaceplaneError(
            Err.INVALID_TYPE, "`credentials` must be an object.", field="credentials"
        )
    return read_text(creds, "email", "credentials"), read_text(creds, "password", "credentials")


def content_type(request: Request) -> str:
    """The request's media type, lower-case, without parameters."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_folder_form(request: Request) -> tuple[list[Upload], Any]:
    """The files of a multipart folder upload (any field names) and its `payload` JSON."""
    form = await request.form()
    uploads: list[Upload] = []
    payload: Any = {}
    for key, value in form.multi_items():
        if isinstance(value, UploadFile):
            uploads.append(Upload(key, value.filename or key, await value.read()))
        elif key == "payload":
            payload = parse_json(value, "payload")
    return uploads, payload


def _read_analysis(item: Any, i: int) -> AnalysisRequest:
    where = f"analyses[{i}]"
    if not isinstance(item, dict):
        raise FaceplaneError(Err.INVALID_TYPE, f"`{where}` must be an object.", field=where, item=i)
    kind = read_text(item, "type", where).upper()
    try:
        check_type(kind)
    except FaceplaneError as exc:
        exc.details.update(field=f"{where}.type", item=i)
        raise
    source = item.get("source_media")
    if source is not None and (
        not isinstance(source, list) or not all(isinstance(s, str) for s in source)
    ):
        raise FaceplaneError(
            Err.INVALID_TYPE,
            f"`{where}.source_media` must be a list of media ids.",
            field=f"{where}.source_media",
            item=i,
        )
    # An empty list is no choice, exactly like no field: the rules pick the media.
    ids = tuple(parse_id(s, f"{where}.source_media") for s in source or ())
    return AnalysisRequest(kind, ids)


def read_analyses(body: dict[str, Any]) -> tuple[list[AnalysisRequest], str | None]:
    """The requested analyses and the optional `resolution_endpoint` (a webhook URL)."""
    items = body.get("analyses")
    if items is None:
        raise FaceplaneError(Err.MISSING_ARGUMENT, "`analyses` is required.", field="analyses")
    if not isinstance(items, list):
        raise FaceplaneError(Err.INVALID_TYPE, "`analyses` must be a list.", field="analyses")
    if not items or len(items) > MAX_ANALYSES:
        raise FaceplaneError(
            Err.INVALID_ARGUMENT, f"`analyses` holds 1 to {MAX_ANALYSES} items.", field="analyses"
        )
    wanted = [_read_analysis(item, i) for i, item in enumerate(items)]
    hook = body.get("resolution_endpoint")
    if hook is not None and not isinstance(hook, str):
        raise FaceplaneError(
            Err.INVALID_TYPE,
            "`resolution_endpoint` must be a URL string.",
            field="resolution_endpoint",
        )
    return wanted, hook or None
