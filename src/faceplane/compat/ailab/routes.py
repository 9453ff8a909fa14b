"""AILabTools compatible routes (seed 001) under /compat/ailab: AILab's envelope and codes.

Paths follow AILab's `/api/<area>/<kind>/<name>` style; the seed fixes only the envelope and
the error codes, so the paths and parameters are Faceplane's choice (docs/compat/ailab.md).
Credentials are the native ones plus AILab's own `ailabapi-api-key` header. Each route
parses (`parse`), makes one service call and renders (`render`); the face database is in
`faceset`, the async tasks in `tasks`.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from faceplane.api.deps import RequestIdDep, RuntimeDep
from faceplane.api.inputs import parse_body
from faceplane.compat.ailab import faceset, tasks
from faceplane.compat.ailab import render as ailab
from faceplane.compat.ailab.parse import (
    AilabCallerDep,
    check_beauty,
    compare_images,
    operation_options,
)
from faceplane.errors import Err, FaceplaneError
from faceplane.services.usage import run_billed

router = APIRouter(prefix="/compat/ailab", tags=["compat-ailab"])
router.include_router(faceset.router)
router.include_router(tasks.router)


@router.post("/api/portrait/analysis/face-analyzer", summary="Detect and analyse faces")
async def face_analyzer(
    request: Request,
    rt: RuntimeDep,
    request_id: RequestIdDep,
    caller: AilabCallerDep,
) -> JSONResponse:
    """Faces, largest first: box, score, landmarks, quality (and embedding on request); an
    image without a face is ERROR_NO_FACE_IN_FILE and is not charged."""
    body = await parse_body(request, ("image",))
    options = operation_options("detect", body.values)
    images = {"image": body.image("image")}
    out = await run_billed(rt, caller, "detect", images, options)
    return ailab.reply(request_id, {"data": ailab.analyzer_data(out)})


@router.post("/api/portrait/analysis/face-compare", summary="Compare two faces 1:1")
async def face_compare(
    request: Request,
    rt: RuntimeDep,
    request_id: RequestIdDep,
    caller: AilabCallerDep,
) -> JSONResponse:
    """`image_target` against `image_template`: similarity in [0, 1], threshold, match."""
    body = await parse_body(request, tuple(ailab.COMPARE_FIELDS))
    images = compare_images(body)
    options = operation_options("compare", body.values)
    try:
        out = await run_billed(rt, caller, "compare", images, options)
    except FaceplaneError as exc:
        raise ailab.in_ailab_fields(exc) from None
    return ailab.reply(request_id, {"data": ailab.compare_data(out)})


# ---- listed by the seed, not implemented ---------------------------------------------------


@router.post("/api/portrait/effects/face-beauty", summary="Beauty effects (not implemented)")
async def face_beauty(request: Request, caller: AilabCallerDep) -> JSONResponse:
    """Checks `enlarge_eye`, `thinface`, `smoothing` and `whitening` (0-100), then answers
    that the effect is not implemented (ERROR_AI_NOT_EXISTS)."""
    body = await parse_body(request, ("image",))
    check_beauty(body.values)
    raise FaceplaneError(Err.NOT_IMPLEMENTED, "Beauty effects are not implemented yet.")


@router.post("/api/portrait/effects/face-swap", summary="Face swap (not implemented)")
async def face_swap(caller: AilabCallerDep) -> JSONResponse:
    """Always answers that face swapping is not implemented (ERROR_AI_NOT_EXISTS)."""
    raise FaceplaneError(Err.NOT_IMPLEMENTED, "Face swap is not implemented yet.")
