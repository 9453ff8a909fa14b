"""Pho.to compatible routes (seed 000): `addtask` with an XML call, `getresult` polling."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from faceplane.api.auth import apply_rate_limit
from faceplane.api.deps import RuntimeDep, StoreDep, TaskHubDep
from faceplane.compat.photo import render as photo
from faceplane.errors import Err, FaceplaneError
from faceplane.services import accounts
from faceplane.services.accounts import Principal
from faceplane.services.images import ImageSource
from faceplane.services.tasks import TaskSpec, render_task
from faceplane.services.usage import submit_billed
from faceplane.store import Store
from faceplane.store.db import tasks

router = APIRouter(prefix="/compat/photo", tags=["compat-photo"])

XML = "text/xml; charset=utf-8"

# Pho.to method names → (Faceplane operation, how the method's params map to options).
METHODS: dict[str, str] = {
    "face_detection": "detect",
    "detect_faces": "detect",
    "face_crop": "crop",
    "crop_face": "crop",
    "crop": "crop",
    "thumbnail": "crop",
}
# Params understood per operation, with their Faceplane option names.
PARAMS = {
    "detect": {"max_faces": "max_faces", "min_face_size": "min_face_size"},
    "crop": {"margin": "margin", "size": "size", "all_faces": "all_faces"},
}


def _authenticate(store: Store, app_id: str, key: str, sign_data: str, data: str) -> Principal:
    """APP_ID with its KEY, or with SIGN_DATA = HMAC-SHA256(DATA, KEY)."""
    if not app_id or not data or not (key or sign_data):
        raise FaceplaneError(
            Err.PARAMETERS_EMPTY,
            "Error in POST parameters: one or more parameters (DATA, SIGN_DATA or APP_ID) are "
            "empty.",
        )
    if key:
        principal = accounts.authenticate_key(store, key)
        if principal.app_id != app_id:
            raise FaceplaneError(Err.APP_NOT_FOUND, "The KEY does not belong to this APP_ID.")
        return principal
    # Pho.to signs DATA only, with no nonce: the signature itself is the replay token, so an
    # identical call within the freshness window is refused as a replay.
    return accounts.authenticate_signature(
        store,
        app_id,
        sign_data,
        data.encode(),
        "photo:" + sign_data.lower(),
        str(time.time()),
        600.0,
    )


def _task_spec(call: photo.PhotoCall) -> TaskSpec:
    if call.template_name:
        raise FaceplaneError(
            Err.TEMPLATE_NOT_FOUND,
            f"Template with the specified name is not found: {call.template_name!r}.",
            template_name=call.template_name,
        )
    name, params = call.methods[0]
    operation = METHODS.get(name)
    if operation is None:
        raise FaceplaneError(
            Err.INVALID_ARGUMENT,
            f"Wrong method or parameter name: unknown method {name!r}; known: "
            + ", ".join(sorted(METHODS))
            + ".",
            method=name,
        )
    options: dict[str, Any] = {}
    for key, value in params.items():
        option = PARAMS[operation].get(key)
        if option is None:
            raise FaceplaneError(
                Err.INVALID_ARGUMENT, f"Wrong method or parameter name: {name} has no {key!r}."
            )
        options[option] = value
    if operation == "crop" and call.result_size and "size" not in options:
        options["size"] = call.result_size
    image = call.images[0]
    if image.rect:
        raise FaceplaneError(
            Err.BAD_FACE_RECT, "A 'rect' on <image_url> is not supported by this server."
        )
    return TaskSpec(operation, {"image": ImageSource("image", url=image.url)}, options)


@router.post("/addtask", summary="Pho.to: add a task (APP_ID, KEY or SIGN_DATA, DATA)")
async def addtask(
    request: Request,
    rt: RuntimeDep,
    store: StoreDep,
    hub: TaskHubDep,
    app_id: Annotated[str, Form(alias="APP_ID")] = "",
    key: Annotated[str, Form(alias="KEY")] = "",
    sign_data: Annotated[str, Form(alias="SIGN_DATA")] = "",
    data: Annotated[str, Form(alias="DATA")] = "",
) -> Response:
    """`<image_process_response>` with `request_id`, status OK and err_code 0, or the error."""
    principal = await run_in_threadpool(_authenticate, store, app_id, key, sign_data, data)
    request.scope["state"]["principal"] = principal
    await apply_rate_limit(request, principal)
    if principal.role not in ("admin", "client"):
        raise FaceplaneError(Err.AUTH_FORBIDDEN, "This role may not add tasks.")
    spec = _task_spec(photo.parse_image_process_call(data.encode()))
    tasks, _, _ = await submit_billed(rt, principal, [spec])
    task = tasks[0]
    hub.queued([task["request_id"]])
    return Response(photo.render_added(task["request_id"]), media_type=XML)


def _load_any(store: Store, request_id: str) -> dict[str, Any]:
    from sqlalchemy import select

    if not request_id:
        raise FaceplaneError(Err.TASK_NOT_FOUND, "Bad, invalid or empty REQUEST_ID parameter.")
    with store.db.connect() as conn:
        row = conn.execute(select(tasks).where(tasks.c.id == request_id)).mappings().first()
    if row is None or row["purged"]:
        raise FaceplaneError(Err.TASK_NOT_FOUND, "There is no task with such REQUEST_ID.")
    return dict(row)


@router.get("/getresult", summary="Pho.to: poll a task by request_id")
def getresult(
    rt: RuntimeDep,
    store: StoreDep,
    request_id: Annotated[str, Query()] = "",
) -> Response:
    """OK with result_url and thumbnails, InProgress, Error, or WrongID.

    As on Pho.to, the request_id itself is the capability: 128 random bits, unguessable.
    """
    row = _load_any(store, request_id)
    return Response(photo.render_task(render_task(rt, row)), media_type=XML)
