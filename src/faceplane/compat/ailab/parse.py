"""What the AILabTools compatible routes share: AILab's key header, arguments, the envelope.

Errors need nothing here: `faceplane.api.dispatch` renders every FaceplaneError raised
under /compat/ailab/ in AILab's shape, so the routes only raise catalogue errors.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers

from faceplane.api.auth import require_caller, require_writer
from faceplane.api.inputs import ParsedBody
from faceplane.compat.ailab import render as ailab
from faceplane.errors import Err, FaceplaneError
from faceplane.services.accounts import Principal
from faceplane.services.images import ImageSource

# Longest group_id, uid or task_id accepted: the native name fields allow 200 characters.
MAX_ID_CHARS = 200

# AILab's names for the two sides of a comparison → the native `compare` fields.
COMPARE_FIELDS = {"image_target": "image1", "image_template": "image2"}


def _with_ailab_key(request: Request) -> Request:
    """The request, with AILab's `ailabapi-api-key` header also sent as `X-API-Key`."""
    headers = Headers(scope=request.scope)
    key = headers.get("ailabapi-api-key")
    if not key or headers.get("x-api-key"):
        return request
    # An empty X-API-Key would be read first and hide the copy: it is replaced.
    raw = [(k, v) for k, v in request.scope["headers"] if k.lower() != b"x-api-key"]
    raw.append((b"x-api-key", key.encode("latin-1")))
    # A shallow copy: the shared `state` still receives the principal and rate-limit headers,
    # and a fresh Request cannot serve headers cached before the copy.
    return Request({**request.scope, "headers": raw}, request.receive)


async def ailab_caller(request: Request) -> Principal:
    """Any authenticated caller; AILab's key header counts like `X-API-Key`."""
    try:
        return await require_caller(_with_ailab_key(request))
    except FaceplaneError as exc:
        if exc.err is not Err.AUTH_MISSING:
            raise
        raise FaceplaneError(
            Err.AUTH_MISSING,
            "No credentials: send `ailabapi-api-key: <KEY>`, `Authorization: Bearer <KEY>` "
            "or `X-API-Key`.",
        ) from None


async def ailab_writer(principal: Annotated[Principal, Depends(ailab_caller)]) -> Principal:
    """A caller allowed to change data (admins and clients)."""
    return await require_writer(principal)


AilabCallerDep = Annotated[Principal, Depends(ailab_caller)]
AilabWriterDep = Annotated[Principal, Depends(ailab_writer)]


def reply(request_id: str, data: dict[str, Any]) -> JSONResponse:
    """The AILab success envelope (HTTP 200, error_code 0) with `data` beside it."""
    status, body = ailab.render_success(request_id, data)
    return JSONResponse(body, status_code=status)


def text_arg(values: dict[str, Any], name: str, required: bool = True) -> str | None:
    """A text argument: MISSING_PARAMETERS when absent, PARAMETERS_CANNOT_EMPTY when blank."""
    value = values.get(name)
    if value is None:
        if not required:
            return None
        raise FaceplaneError(Err.MISSING_ARGUMENT, f"`{name}` is required.", field=name)
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise FaceplaneError(Err.INVALID_TYPE, f"`{name}` must be a string.", field=name)
    text = str(value).strip()
    if not text:
        raise FaceplaneError(Err.PARAMETERS_EMPTY, f"`{name}` cannot be empty.", field=name)
    if len(text) > MAX_ID_CHARS:
        raise FaceplaneError(
            Err.INVALID_ARGUMENT,
            f"`{name}` is longer than {MAX_ID_CHARS} characters.",
            field=name,
            max_chars=MAX_ID_CHARS,
        )
    return text


def required_text(values: dict[str, Any], name: str) -> str:
    """A text argument that must be given."""
    value = text_arg(values, name)
    assert value is not None
    return value


def number_arg(values: dict[str, Any], name: str, low: float, high: float, err: Err) -> None:
    """Check an optional number is within [low, high]; `err` names the parameter's code."""
    value = values.get(name)
    if value is None or value == "":
        return
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not low <= number <= high:  # NaN fails too: a non-number is out of range
        raise FaceplaneError(
            err,
            f"`{name}` must be a number from {low:g} to {high:g}.",
            field=name,
            value=str(value),
        )


def json_object(value: Any, name: str) -> dict[str, Any]:
    """A JSON object given as such or as its text (a form field)."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            value = None
    if not isinstance(value, dict):
        raise FaceplaneError(Err.INVALID_ARGUMENT, f"`{name}` must be a JSON object.", field=name)
    return value


def compare_images(body: ParsedBody) -> dict[str, ImageSource]:
    """`image_target` and `image_template` as the native `image1` and `image2`."""
    images = {}
    for ailab_name, native in COMPARE_FIELDS.items():
        source = body.images.get(ailab_name) or body.images.get(native)
        if source is None:
            raise FaceplaneError(
                Err.MISSING_ARGUMENT, f"No image was given in `{ailab_name}`.", field=ailab_name
            )
        images[native] = source
    return images


def ailab_field_names(exc: FaceplaneError) -> FaceplaneError:
    """Speak of `image_target`/`image_template` where the native compare said image1/image2."""
    for ailab_name, native in COMPARE_FIELDS.items():
        if exc.details.get("field") == native:
            exc.details["field"] = ailab_name
        exc.message = exc.message.replace(f"`{native}`", f"`{ailab_name}`")
    return exc
