"""The task API: submit (one or a batch), get (optionally long-polling), list, cancel; blobs."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from faceplane.api.auth import AnalystDep, CallerDep, authorize_operations
from faceplane.api.deps import RequestIdDep, RuntimeDep, TaskHubDep
from faceplane.api.inputs import read_json, ref_to_source
from faceplane.errors import Err, FaceplaneError
from faceplane.json_input import parse_json
from faceplane.runtime import Runtime
from faceplane.services import accounts
from faceplane.services.accounts import Principal
from faceplane.services.idempotency import request_hash
from faceplane.services.images import ImageSource
from faceplane.services.tasks import (
    TaskSpec,
    cancel_task,
    get_task,
    list_tasks,
    read_blob,
    render_task,
)
from faceplane.services.usage import submit_billed

router = APIRouter(prefix="/v1", tags=["tasks"])


TASK_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["operation"],
                    "properties": {
                        "operation": {"type": "string", "enum": ["detect", "compare", "crop"]},
                        "input": {
                            "type": "object",
                            "description": "Images by field name: {base64} or {url}.",
                        },
                        "options": {"type": "object"},
                        "webhook": {
                            "type": "object",
                            "properties": {"url": {"type": "string"}, "secret": {"type": "string"}},
                        },
                        "idempotency_key": {"type": "string"},
                    },
                }
            },
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "operation": {"type": "string"},
                        "image": {"type": "string", "format": "binary"},
                        "options": {"type": "string", "description": "JSON object"},
                        "webhook_url": {"type": "string"},
                        "webhook_secret": {"type": "string"},
                        "idempotency_key": {"type": "string"},
                    },
                }
            },
        },
    }
}


def _spec_from_json(item: Any, header_key: str | None) -> TaskSpec:
    if not isinstance(item, dict):
        raise FaceplaneError(Err.INVALID_ARGUMENT, "Each task must be a JSON object.")
    operation = item.get("operation")
    if not isinstance(operation, str) or not operation:
        raise FaceplaneError(Err.MISSING_ARGUMENT, "`operation` is required.", field="operation")
    inputs = item.get("input") or {}
    options = item.get("options") or {}
    webhook = item.get("webhook") or {}
    if (
        not isinstance(inputs, dict)
        or not isinstance(options, dict)
        or not isinstance(webhook, dict)
    ):
        raise FaceplaneError(
            Err.INVALID_ARGUMENT, "`input`, `options` and `webhook` must be JSON objects."
        )
    images = {name: ref_to_source(name, ref) for name, ref in inputs.items()}
    key = item.get("idempotency_key") or header_key
    return TaskSpec(
        operation=operation,
        images=images,
        options=options,
        webhook_url=webhook.get("url") or item.get("webhook_url"),
        webhook_secret=webhook.get("secret") or item.get("webhook_secret"),
        idempotency_key=str(key) if key else None,
    )


async def _specs_from_form(request: Request, header_key: str | None) -> list[TaskSpec]:
    """Multipart: one task per uploaded file of each image field (a batch of files)."""
    form = await request.form()
    fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
    files = [(k, v) for k, v in form.multi_items() if not isinstance(v, str)]
    options = parse_json(fields.get("options") or "{}", "options")
    base = {
        "operation": fields.get("operation"),
        "options": options,
        "webhook_url": fields.get("webhook_url"),
        "webhook_secret": fields.get("webhook_secret"),
        "idempotency_key": fields.get("idempotency_key") or header_key,
    }
    by_field: dict[str, list[bytes]] = {}
    for name, upload in files:
        by_field.setdefault(name, []).append(await upload.read())
    urls = {
        k.removesuffix("_url"): v
        for k, v in fields.items()
        if k.endswith("_url") and k != "webhook_url"
    }
    count = max([len(v) for v in by_field.values()] or [1])
    specs = []
    for i in range(count):
        images = {n: ImageSource(field=n, data=d[min(i, len(d) - 1)]) for n, d in by_field.items()}
        images.update({n: ImageSource(field=n, url=u) for n, u in urls.items()})
        spec = _spec_from_json({**base, "input": {}}, None)
        key = base["idempotency_key"]
        specs.append(
            TaskSpec(
                spec.operation,
                images,
                spec.options,
                spec.webhook_url,
                spec.webhook_secret,
                f"{key}:{i}" if key and count > 1 else key,
            )
        )
    return specs


def _with_app_webhook(rt: Runtime, caller: Principal, specs: list[TaskSpec]) -> list[TaskSpec]:
    """Tasks that name no webhook use their app's default one, if it has one. The request is
    hashed first: an idempotent retry is the same request even if the app's webhook changed."""
    if not caller.app_id or all(s.webhook_url for s in specs):
        return specs
    url, secret = accounts.app_webhook(rt, caller.company_id, caller.app_id)
    if not url:
        return specs
    return [
        s
        if s.webhook_url
        else replace(
            s,
            webhook_url=url,
            webhook_secret=secret,
            request_hash=request_hash(rt, s) if s.idempotency_key else None,
        )
        for s in specs
    ]


async def _read_specs(request: Request) -> list[TaskSpec]:
    header_key = request.headers.get("idempotency-key")
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        return await _specs_from_form(request, header_key)
    body = await read_json(request)
    if isinstance(body, dict) and "items" in body:
        body = body["items"]
    if isinstance(body, list):
        return [_spec_from_json(item, None) for item in body]
    return [_spec_from_json(body, header_key)]


@router.post("/tasks", status_code=202, summary="Submit a task", openapi_extra=TASK_BODY)
async def submit(
    request: Request, rt: RuntimeDep, hub: TaskHubDep, caller: CallerDep
) -> JSONResponse:
    """202 with the task's `request_id` and `status`; the same idempotency key with the same
    request gives the same task back (200), with another request TASK_CONFLICT (409)."""
    specs = await _read_specs(request)
    if len(specs) != 1:
        raise FaceplaneError(
            Err.INVALID_ARGUMENT, "Send several tasks to POST /v1/tasks:batch.", items=len(specs)
        )
    authorize_operations(caller, [s.operation for s in specs])
    specs = await rt.run_io(_with_app_webhook, rt, caller, specs)
    tasks, created, _ = await submit_billed(rt, caller, specs)
    if created[0]:
        hub.queued([tasks[0]["request_id"]])
    return JSONResponse(tasks[0], status_code=202 if created[0] else 200)


@router.post("/tasks:batch", status_code=202, summary="Submit up to batch_max_items tasks at once")
async def submit_many(
    request: Request,
    rt: RuntimeDep,
    hub: TaskHubDep,
    request_id: RequestIdDep,
    caller: CallerDep,
) -> JSONResponse:
    """One `request_id` per item; all items are checked before any is queued."""
    specs = await _read_specs(request)
    authorize_operations(caller, [s.operation for s in specs])
    specs = await rt.run_io(_with_app_webhook, rt, caller, specs)
    tasks, created, batch_id = await submit_billed(rt, caller, specs, batch=True)
    hub.queued([t["request_id"] for t, new in zip(tasks, created, strict=True) if new])
    return JSONResponse(
        {"request_id": request_id, "batch_id": batch_id, "tasks": tasks}, status_code=202
    )


@router.get("/tasks/{task_id}", summary="A task's status, result or error")
async def get_one(
    task_id: str,
    rt: RuntimeDep,
    hub: TaskHubDep,
    caller: CallerDep,
    wait_s: Annotated[float, Query(ge=0, le=60, description="Long-poll up to this long.")] = 0,
) -> dict[str, Any]:
    """`status` is queued, running, succeeded, failed or canceled."""
    if wait_s > 0:
        row = await hub.wait(caller.company_id, task_id, wait_s)
        if not row["purged"]:
            return await rt.run_io(render_task, rt, row)
    return await rt.run_io(get_task, rt, caller.company_id, task_id)


@router.delete("/tasks/{task_id}", summary="Cancel a task")
async def cancel(task_id: str, rt: RuntimeDep, caller: AnalystDep) -> dict[str, Any]:
    """A queued task is canceled at once; a running one stops cooperatively."""
    return await rt.run_io(cancel_task, rt, caller.company_id, task_id)


@router.get("/tasks", summary="The caller's tasks, newest first")
async def list_all(
    rt: RuntimeDep,
    request_id: RequestIdDep,
    caller: CallerDep,
    status: Annotated[
        str | None, Query(pattern="^(queued|running|succeeded|failed|canceled)$")
    ] = None,
    since: Annotated[
        str | None,
        Query(description="ISO 8601 time (naive = UTC): tasks created at or after it."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page.")] = None,
) -> dict[str, Any]:
    """Paginated with `next_cursor`."""
    page = await rt.run_io(list_tasks, rt, caller.company_id, status, since, limit, cursor)
    return {"request_id": request_id, **page}


@router.get("/blobs/{key:path}", summary="An image result, by signed URL", tags=["blobs"])
async def blob(
    key: str,
    rt: RuntimeDep,
    company_id: str,
    expires: int,
    sig: str,
) -> Response:
    """Serve a stored image if the URL's signature is valid and unexpired."""
    data, media_type = await rt.run_io(read_blob, rt, key, company_id, expires, sig)
    return Response(
        data,
        media_type=media_type,
        headers={"Cache-Control": "private, max-age=300"},
    )
