"""Pho.to compatible routes (seed 000): `addtask` with an XML call, `getresult` polling."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response

from faceplane.api.auth import apply_rate_limit, authorize_operations
from faceplane.api.deps import RuntimeDep, TaskHubDep
from faceplane.compat.photo import parse, render
from faceplane.errors import FaceplaneError
from faceplane.services import accounts
from faceplane.services.tasks import get_task_by_request_id
from faceplane.services.usage import submit_billed

router = APIRouter(prefix="/compat/photo", tags=["compat-photo"])


def _xml(body: str) -> Response:
    return Response(body, status_code=render.HTTP_STATUS, media_type=render.MEDIA_TYPE)


@router.post("/addtask", summary="Pho.to: add a task (APP_ID, KEY or SIGN_DATA, DATA)")
async def addtask(
    request: Request,
    rt: RuntimeDep,
    hub: TaskHubDep,
    app_id: Annotated[str, Form(alias="APP_ID")] = "",
    key: Annotated[str, Form(alias="KEY")] = "",
    sign_data: Annotated[str, Form(alias="SIGN_DATA")] = "",
    data: Annotated[str, Form(alias="DATA")] = "",
) -> Response:
    """`<image_process_response>` with `request_id`, status OK and err_code 0, or the error."""
    parse.require_credentials(app_id, key, sign_data, data)
    if key:
        principal = await rt.run_io(accounts.authenticate_app_key, rt, app_id, key)
    else:
        principal = await rt.run_io(
            accounts.authenticate_data_signature, rt, app_id, sign_data, data.encode()
        )
    request.scope["state"]["principal"] = principal
    await apply_rate_limit(request, principal)
    spec = parse.task_spec(parse.parse_image_process_call(data.encode()))
    authorize_operations(principal, [spec.operation])  # the roles table, as natively
    tasks, _, _ = await submit_billed(rt, principal, [spec])
    request_id = tasks[0]["request_id"]
    hub.queued([request_id])  # returns at once: the hub publishes off the event loop
    return _xml(render.render_added(request_id))


@router.get("/getresult", summary="Pho.to: poll a task by request_id")
async def getresult(rt: RuntimeDep, request_id: Annotated[str, Query()] = "") -> Response:
    """OK with result_url (and thumbnails for an image result), InProgress, Error, or WrongID.

    As on Pho.to, the request_id itself is the capability: 128 random bits, unguessable. So
    it opens only tasks Pho.to's addtask created: any other task id (native, AILab, Oz, whose
    ids are not handed out as capabilities) answers WrongID exactly like an unknown one.
    """
    try:
        task = await rt.run_io(get_task_by_request_id, rt, request_id, "photo")
    except FaceplaneError as exc:
        # The answer is about the task asked for: it names that request id, not this call's.
        return _xml(render.render_error(request_id or None, exc)[1])
    return _xml(render.render_task(task))
