"""AILabTools compatible routes (seed 001) under /compat/ailab: AILab's envelope and codes.

Paths follow AILab's `/api/<area>/<kind>/<name>` style; the seed fixes only the envelope and
the error codes, so the paths and parameters are Faceplane's choice (docs/compat/ailab.md).
Credentials are the native ones plus AILab's own `ailabapi-api-key` header.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from faceplane.api.deps import RequestIdDep, RuntimeDep, StoreDep, TaskHubDep, get_runtime
from faceplane.api.inputs import parse_body
from faceplane.compat.ailab import faceset as compat_ailab_faceset
from faceplane.compat.ailab.faceset import group_id_of, user_id_of
from faceplane.compat.ailab.parse import (
    COMPARE_FIELDS,
    AilabCallerDep,
    AilabWriterDep,
    ailab_field_names,
    compare_images,
    json_object,
    number_arg,
    reply,
    required_text,
)
from faceplane.errors import Err, FaceplaneError
from faceplane.services.operations import OPERATIONS
from faceplane.services.tasks import (
    URL_FIELDS,
    TaskSpec,
    cancel_task,
    get_task,
    render_task,
)
from faceplane.services.usage import run_billed, submit_billed
from faceplane.store import Store
from faceplane.tasks.state import Status

router = APIRouter(prefix="/compat/ailab", tags=["compat-ailab"])
router.include_router(compat_ailab_faceset.router)

# AILab's task_status: 0 queued, 1 processing, 2 done. A failed or revoked task has no status
# of its own there: querying it answers the task's error, as AILab does.
TASK_STATUS = {Status.QUEUED: 0, Status.RUNNING: 1, Status.SUCCEEDED: 2}

# The beauty parameters AILab validates, each 0-100, with the code its bad value answers.
BEAUTY_PARAMS = {
    "enlarge_eye": Err.BEAUTY_BIG_EYES_INVALID,
    "thinface": Err.BEAUTY_FACE_SLIMMING_INVALID,
    "smoothing": Err.BEAUTY_SMOOTHING_INVALID,
    "whitening": Err.BEAUTY_WHITENING_INVALID,
}

# Every image field a task may carry: each operation's own, and AILab's compare names.
TASK_IMAGE_FIELDS = tuple(
    dict.fromkeys([*(f for op in OPERATIONS.values() for f in op.image_fields), *COMPARE_FIELDS])
)
# Fields of a task submission that are not options of the operation.
TASK_FIELDS = ("operation", "options", "group_id", "uid")


def _require_face(body: dict[str, Any]) -> None:
    """AILab answers an image without a face with ERROR_NO_FACE_IN_FILE, not an empty list."""
    if not body["faces"]:
        raise FaceplaneError(Err.FACE_NOT_FOUND, "No face was found in `image`.", field="image")


@router.post("/api/portrait/analysis/face-analyzer", summary="Detect and analyse faces")
async def face_analyzer(
    request: Request,
    request_id: RequestIdDep,
    caller: AilabCallerDep,
) -> JSONResponse:
    """Faces, largest first: box, score, landmarks, quality (and embedding on request)."""
    body = await parse_body(request, ("image",))
    options = dict(body.values)
    if options.get("face_attributes_type"):
        raise FaceplaneError(
            Err.NOT_IMPLEMENTED,
            "Face attributes (age, gender, expression, ...) are not implemented.",
            field="face_attributes_type",
        )
    if "max_face_num" in options:
        options["max_faces"] = options.pop("max_face_num")
    out = await run_billed(
        get_runtime(request),
        caller,
        "detect",
        {"image": body.image("image")},
        options,
        _require_face,
    )
    return reply(request_id, {"data": {"face_num": len(out["faces"]), **out}})


@router.post("/api/portrait/analysis/face-compare", summary="Compare two faces 1:1")
async def face_compare(
    request: Request,
    request_id: RequestIdDep,
    caller: AilabCallerDep,
) -> JSONResponse:
    """`image_target` against `image_template`: similarity in [0, 1], threshold, match."""
    body = await parse_body(request, tuple(COMPARE_FIELDS))
    images = compare_images(body)
    try:
        out = await run_billed(get_runtime(request), caller, "compare", images, dict(body.values))
    except FaceplaneError as exc:
        raise ailab_field_names(exc) from None
    data = {k: v for k, v in out.items() if k not in ("face1", "face2")}
    data["face_target"], data["face_template"] = out["face1"], out["face2"]
    return reply(request_id, {"data": data})


# ---- async tasks ---------------------------------------------------------------------------


def _task_options(store: Store, company_id: str, values: dict[str, Any]) -> dict[str, Any]:
    """The operation's options: plain fields, the `options` object, and group/uid as ids."""
    options = {k: v for k, v in values.items() if k not in TASK_FIELDS}
    options.update(json_object(values.get("options"), "options"))
    if values.get("uid") is not None:
        group_id = required_text(values, "group_id")
        uid = required_text(values, "uid")
        options["collection_id"], options["subject_id"] = user_id_of(
            store, company_id, group_id, uid
        )
    elif values.get("group_id") is not None:
        options["collection_id"] = group_id_of(store, company_id, required_text(values, "group_id"))
    return options


def _task_answer(task: dict[str, Any]) -> dict[str, Any]:
    """A task as AILab reports it: task_status with its data, or the task's own error."""
    task_id, status = task["request_id"], task["status"]
    if status == Status.FAILED:
        error = task.get("error") or {}
        err = Err.__members__.get(str(error.get("code")), Err.INTERNAL)
        raise FaceplaneError(err, error.get("message"), task_id=task_id)
    if status == Status.CANCELED:
        raise FaceplaneError(Err.TASK_REVOKED, "The task was revoked.", task_id=task_id)
    out: dict[str, Any] = {
        "task_id": task_id,
        "task_status": TASK_STATUS[Status(status)],
        "status": status,
        "operation": task["operation"],
        "created_at": task["created_at"],
        "finished_at": task["finished_at"],
    }
    if status == Status.SUCCEEDED:
        result = dict(task.get("result") or {})
        result.update({f: task[f] for f in URL_FIELDS.values() if f in task})
        out["data"] = result
    return out


@router.post("/api/common/async-task", summary="Submit any operation as an async task")
async def submit_async(
    request: Request,
    rt: RuntimeDep,
    store: StoreDep,
    hub: TaskHubDep,
    request_id: RequestIdDep,
    caller: AilabWriterDep,
) -> JSONResponse:
    """`operation` (detect, compare, crop, enroll, search, blacklist_check), its images and
    options; answers `task_id` to query with /api/common/query-async-task-result."""
    body = await parse_body(request, TASK_IMAGE_FIELDS)
    operation = required_text(body.values, "operation")
    # Compare may take embeddings instead of images, so absent sides are left to its checks.
    images = {COMPARE_FIELDS.get(k, k): v for k, v in body.images.items()}
    options = await run_in_threadpool(_task_options, store, caller.company_id, body.values)
    key = request.headers.get("idempotency-key")
    spec = TaskSpec(operation, images, options, idempotency_key=key or None)
    try:
        tasks, created, _ = await submit_billed(rt, caller, [spec])
    except FaceplaneError as exc:
        raise ailab_field_names(exc) from None
    task = tasks[0]
    if created[0]:
        hub.queued([task["request_id"]])
    return reply(request_id, {"task_type": "async", "task_id": task["request_id"]})


@router.get("/api/common/query-async-task-result", summary="An async task's status or result")
async def query_async(
    rt: RuntimeDep,
    store: StoreDep,
    hub: TaskHubDep,
    request_id: RequestIdDep,
    caller: AilabCallerDep,
    task_id: Annotated[str | None, Query()] = None,
    wait_s: Annotated[float, Query(ge=0, le=60, description="Long-poll up to this long.")] = 0,
) -> JSONResponse:
    """`task_status` 0 queued, 1 processing, 2 done with `data`; a failed task answers its
    error, a revoked one ERROR_TASK_REVOKED."""
    tid = required_text({"task_id": task_id}, "task_id")
    if wait_s > 0:
        row = await hub.wait(caller.company_id, tid, wait_s)
        task = (
            await run_in_threadpool(render_task, rt, row)
            if not row["purged"]
            else await run_in_threadpool(get_task, rt, caller.company_id, tid)
        )
    else:
        task = await run_in_threadpool(get_task, rt, caller.company_id, tid)
    return reply(request_id, _task_answer(task))


# Two routes rather than one with two methods: each gets its own OpenAPI operation id.
@router.post("/api/common/revoke-async-task", summary="Revoke an async task")
@router.delete("/api/common/revoke-async-task", summary="Revoke an async task")
async def revoke_async(
    request: Request,
    rt: RuntimeDep,
    store: StoreDep,
    request_id: RequestIdDep,
    caller: AilabWriterDep,
) -> JSONResponse:
    """`task_id`: a queued task is revoked at once, a running one stops cooperatively;
    ERROR_TASK_REVOKED when already revoked, ERROR_TASK_REVOCATION_FAILED when finished."""
    body = await parse_body(request, ())
    tid = required_text(body.values, "task_id")
    task = await run_in_threadpool(cancel_task, rt, caller.company_id, tid)
    return reply(request_id, {"task_id": tid, "status": task["status"]})


# ---- listed by the seed, not implemented ---------------------------------------------------


@router.post("/api/portrait/effects/face-beauty", summary="Beauty effects (not implemented)")
async def face_beauty(request: Request, caller: AilabCallerDep) -> JSONResponse:
    """Checks `enlarge_eye`, `thinface`, `smoothing` and `whitening` (0-100), then answers
    that the effect is not implemented."""
    body = await parse_body(request, ("image",))
    for name, err in BEAUTY_PARAMS.items():
        number_arg(body.values, name, 0, 100, err)
    raise FaceplaneError(Err.NOT_IMPLEMENTED, "Beauty effects are not implemented yet.")


@router.post("/api/portrait/effects/face-swap", summary="Face swap (not implemented)")
async def face_swap(caller: AilabCallerDep) -> JSONResponse:
    """Always answers that face swapping is not implemented."""
    raise FaceplaneError(Err.NOT_IMPLEMENTED, "Face swap is not implemented yet.")
