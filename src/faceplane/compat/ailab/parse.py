"""AILab's requests read into native ones: the key header, arguments, option names, and the
caller's group and user names resolved to ids.

Errors need nothing here: `faceplane.api.dispatch` renders every FaceplaneError raised
under /compat/ailab/ in AILab's shape, so parsing only raises catalogue errors.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.datastructures import Headers

from faceplane.api.auth import require_caller, require_writer
from faceplane.api.inputs import ParsedBody
from faceplane.compat.ailab.render import COMPARE_FIELDS
from faceplane.errors import Err, FaceplaneError
from faceplane.json_input import NOT_JSON, parse_json
from faceplane.runtime import Runtime
from faceplane.services import collections as col
from faceplane.services.accounts import Principal
from faceplane.services.images import ImageSource

# Longest group_id, uid or task_id accepted: the native name fields allow 200 characters.
MAX_ID_CHARS = 200

# AILab's option names → the native ones, per operation.
OPTION_NAMES = {"detect": {"max_face_num": "max_faces"}, "search": {"max_user_num": "k"}}

# The beauty parameters AILab validates, each 0-100, with the code its bad value answers.
BEAUTY_PARAMS = {
    "enlarge_eye": Err.BEAUTY_BIG_EYES_INVALID,
    "thinface": Err.BEAUTY_FACE_SLIMMING_INVALID,
    "smoothing": Err.BEAUTY_SMOOTHING_INVALID,
    "whitening": Err.BEAUTY_WHITENING_INVALID,
}

# Fields of an async task submission that are not options of its operation.
TASK_FIELDS = ("operation", "options")


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


# ---- arguments -----------------------------------------------------------------------------


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


def check_beauty(values: dict[str, Any]) -> None:
    """Check each beauty strength AILab defines is a number from 0 to 100."""
    for name, err in BEAUTY_PARAMS.items():
        number_arg(values, name, 0, 100, err)


def json_object(value: Any, name: str) -> dict[str, Any]:
    """A JSON object given as such or as its text (a form field)."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = parse_json(value, name)
        except FaceplaneError as exc:
            if exc.details.get("reason") not in NOT_JSON:
                raise
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


def task_images(body: ParsedBody) -> dict[str, ImageSource]:
    """A task's images under their native names; compare may take embeddings instead, so an
    absent side is left to its own checks."""
    return {COMPARE_FIELDS.get(k, k): v for k, v in body.images.items()}


def operation_options(operation: str, values: dict[str, Any]) -> dict[str, Any]:
    """The native options of `operation` from AILab's fields: AILab's names renamed, and
    AILab's contract for detect (no face is ERROR_NO_FACE_IN_FILE) made an option, so a
    synchronous call and a task fail alike."""
    options = dict(values)
    for ailab_name, native in OPTION_NAMES.get(operation, {}).items():
        if ailab_name in options:
            options[native] = options.pop(ailab_name)
    if operation == "detect":
        if options.get("face_attributes_type"):
            raise FaceplaneError(
                Err.NOT_IMPLEMENTED,
                "Face attributes (age, gender, expression, ...) are not implemented.",
                field="face_attributes_type",
            )
        options["require_face"] = True
    if operation == "enroll" and "face" in options:
        options["face"] = str(options["face"])
    return options


# ---- the caller's names for groups and users -----------------------------------------------


async def find_group(rt: Runtime, company_id: str, group_id: str) -> dict[str, Any]:
    """The caller's group `group_id` (a collection), or ERROR_USER_GROUP_NOT_FOUND."""
    try:
        return await rt.run_io(col.find_collection_by_name, rt, company_id, group_id)
    except FaceplaneError as exc:
        if exc.err is Err.COLLECTION_NOT_FOUND:
            exc.message = f"There is no group {group_id!r}."
        raise


async def find_user(rt: Runtime, company_id: str, group_id: str, uid: str) -> dict[str, Any]:
    """User `uid` of group `group_id` (a subject), or the missing one's NOT_FOUND."""
    try:
        return await rt.run_io(col.find_subject_by_name, rt, company_id, group_id, uid)
    except FaceplaneError as exc:
        if exc.err is Err.COLLECTION_NOT_FOUND:
            exc.message = f"There is no group {group_id!r}."
        elif exc.err is Err.SUBJECT_NOT_FOUND:
            exc.message = f"There is no user {uid!r} in group {group_id!r}."
        raise


async def task_options(
    rt: Runtime, company_id: str, operation: str, values: dict[str, Any]
) -> dict[str, Any]:
    """An async task's options: its plain fields and `options` object under native names,
    with `group_id` (and `uid`) resolved to the collection (and subject). The names stay in
    the options, so the result can be answered in the caller's terms."""
    options = {k: v for k, v in values.items() if k not in TASK_FIELDS}
    options.update(json_object(values.get("options"), "options"))
    options = operation_options(operation, options)
    if options.get("uid") is not None:
        group_id = options["group_id"] = required_text(options, "group_id")
        uid = options["uid"] = required_text(options, "uid")
        subject = await find_user(rt, company_id, group_id, uid)
        options["collection_id"], options["subject_id"] = subject["collection_id"], subject["id"]
    elif options.get("group_id") is not None:
        group_id = options["group_id"] = required_text(options, "group_id")
        options["collection_id"] = (await find_group(rt, company_id, group_id))["id"]
    return options
