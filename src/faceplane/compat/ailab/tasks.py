"""AILab's async tasks: submit any operation, query its result, revoke it.

A task's result is answered in the shape of the operation's synchronous route (the same
renderer in `render`), and a task fails with the code its synchronous route would answer.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from faceplane.api.auth import authorize_operations
from faceplane.api.deps import RequestIdDep, RuntimeDep, TaskHubDep
from faceplane.api.inputs import parse_body
from faceplane.compat.ailab import render as ailab
from faceplane.compat.ailab.parse import (
    AilabCallerDep,
    AilabWriterDep,
    required_text,
    task_images,
    task_options,
)
from faceplane.errors import FaceplaneError
from faceplane.services.operations import OPERATIONS
from faceplane.services.tasks import TaskSpec, cancel_task, get_task_and_options
from faceplane.services.usage import submit_billed

router = APIRouter()

# Every image field a task may carry: each operation's own, and AILab's compare names.
TASK_IMAGE_FIELDS = tuple(
    dict.fromkeys(
        [*(f for op in OPERATIONS.values() for f in op.image_fields), *ailab.COMPARE_FIELDS]
    )
)


@router.post("/api/common/async-task", summary="Submit any operation as an async task")
async def submit_async(
    request: Request,
    rt: RuntimeDep,
    hub: TaskHubDep,
    request_id: RequestIdDep,
    caller: AilabCallerDep,
) -> JSONResponse:
    """`operation` (detect, compare, crop, enroll, search, blacklist_check), its images and
    options under the names of its synchronous route; answers `task_id` to query with
    /api/common/query-async-task-result."""
    body = await parse_body(request, TASK_IMAGE_FIELDS)
    operation = required_text(body.values, "operation")
    authorize_operations(caller, [operation])  # the roles table, as natively
    options = await task_options(rt, caller.company_id, operation, body.values)
    key = request.headers.get("idempotency-key")
    spec = TaskSpec(
        operation, task_images(body), options, idempotency_key=key or None, origin="ailab"
    )
    try:
        tasks, created, _ = await submit_billed(rt, caller, [spec])
    except FaceplaneError as exc:
        raise ailab.in_ailab_fields(exc) from None
    task = tasks[0]
    if created[0]:
        hub.queued([task["request_id"]])
    return ailab.reply(request_id, {"task_type": "async", "task_id": task["request_id"]})


@router.get("/api/common/query-async-task-result", summary="An async task's status or result")
async def query_async(
    rt: RuntimeDep,
    hub: TaskHubDep,
    request_id: RequestIdDep,
    caller: AilabCallerDep,
    task_id: Annotated[str | None, Query()] = None,
    wait_s: Annotated[float, Query(ge=0, le=60, description="Long-poll up to this long.")] = 0,
) -> JSONResponse:
    """`task_status` 0 queued, 1 processing, 2 done with `data` as the synchronous route
    answers it; a failed task answers its error, a revoked one ERROR_TASK_REVOKED."""
    tid = required_text({"task_id": task_id}, "task_id")
    row = await hub.wait(caller.company_id, tid, wait_s) if wait_s > 0 else None
    task, options = await rt.run_io(get_task_and_options, rt, caller.company_id, tid, row)
    return ailab.reply(request_id, ailab.task_answer(task, options))


# Two routes rather than one with two methods: each gets its own OpenAPI operation id.
@router.post("/api/common/revoke-async-task", summary="Revoke an async task")
@router.delete("/api/common/revoke-async-task", summary="Revoke an async task")
async def revoke_async(
    request: Request,
    rt: RuntimeDep,
    request_id: RequestIdDep,
    caller: AilabWriterDep,
) -> JSONResponse:
    """`task_id`: a queued task is revoked at once, a running one stops cooperatively;
    ERROR_TASK_REVOKED when already revoked, ERROR_TASK_REVOCATION_FAILED when finished."""
    body = await parse_body(request, ())
    tid = required_text(body.values, "task_id")
    task = await rt.run_io(cancel_task, rt, caller.company_id, tid)
    return ailab.reply(request_id, {"task_id": tid, "status": task["status"]})
