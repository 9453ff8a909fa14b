"""POST /v1/detect and POST /v1/compare: synchronous runs of the operations."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from faceplane.api.auth import CallerDep
from faceplane.api.deps import RequestIdDep, get_runtime
from faceplane.api.inputs import image_body_schema, parse_body
from faceplane.api.render import render_result
from faceplane.services.accounts import Principal
from faceplane.services.operations import OPERATIONS
from faceplane.services.params import CompareParams, DetectParams
from faceplane.services.usage import run_billed

router = APIRouter(prefix="/v1", tags=["faces"])


async def run_sync(
    name: str, request: Request, request_id: str, caller: Principal, **path: str
) -> dict[str, Any]:
    """Parse an operation's images and options (path parameters win), run it billed, render:
    the body of every native synchronous operation route."""
    body = await parse_body(request, OPERATIONS[name].image_fields)
    rt = get_runtime(request)
    result = await run_billed(rt, caller, name, body.images, {**body.values, **path})
    return render_result(request_id, result)


@router.post(
    "/detect",
    summary="Detect faces with landmarks, quality and optional embeddings",
    openapi_extra=image_body_schema(OPERATIONS["detect"].image_fields, DetectParams, raw=True),
)
async def detect(
    request: Request,
    request_id: RequestIdDep,
    caller: CallerDep,
) -> dict[str, Any]:
    """Faces sorted by size, largest first: box, score, landmarks, quality, embedding."""
    return await run_sync("detect", request, request_id, caller)


@router.post(
    "/compare",
    summary="Compare two faces 1:1 at a false-accept rate",
    openapi_extra=image_body_schema(OPERATIONS["compare"].image_fields, CompareParams),
)
async def compare(
    request: Request,
    request_id: RequestIdDep,
    caller: CallerDep,
) -> dict[str, Any]:
    """`similarity` in [0, 1] and `far` (the false-accept rate of the score) on the
    FAR-calibrated scale (0.6/0.7/0.8/0.9 = FAR 1e-3/1e-4/1e-5/1e-6), `distance`, `threshold`
    and `threshold_far` (`far` of the request, default FACEPLANE_COMPARE_FAR), `match`, and the
    face used on each side."""
    return await run_sync("compare", request, request_id, caller)
