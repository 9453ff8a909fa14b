"""POST /v1/detect and POST /v1/compare: synchronous runs of the operations."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from faceplane.api.auth import CallerDep, charge
from faceplane.api.blocking import BlockingPool
from faceplane.api.deps import BlockingDep, RequestIdDep, ServicesDep
from faceplane.api.inputs import image_body_schema, parse_body
from faceplane.dialects.native import render_result
from faceplane.errors import FaceplaneError
from faceplane.services.accounts import Principal
from faceplane.services.context import Services
from faceplane.services.operations import OPERATIONS, run_operation
from faceplane.services.params import CompareParams, DetectParams

router = APIRouter(prefix="/v1", tags=["faces"])


async def _run_sync(
    name: str,
    request: Request,
    services: Services,
    blocking: BlockingPool,
    request_id: str,
    caller: Principal,
) -> dict[str, Any]:
    body = await parse_body(request, OPERATIONS[name].image_fields)
    await charge(request, caller, {name: 1})
    try:
        result = await blocking.run(
            run_operation, services, name, body.images, body.values, caller.company_id
        )
    except FaceplaneError:
        await charge(request, caller, {name: 1}, refund=True)
        raise
    return render_result(request_id, result.body)


@router.post(
    "/detect",
    summary="Detect faces with landmarks, quality and optional embeddings",
    openapi_extra=image_body_schema(OPERATIONS["detect"].image_fields, DetectParams, raw=True),
)
async def detect(
    request: Request,
    services: ServicesDep,
    blocking: BlockingDep,
    request_id: RequestIdDep,
    caller: CallerDep,
) -> dict[str, Any]:
    """Faces sorted by size, largest first: box, score, landmarks, quality, embedding."""
    return await _run_sync("detect", request, services, blocking, request_id, caller)


@router.post(
    "/compare",
    summary="Compare two faces 1:1 with the calibrated threshold",
    openapi_extra=image_body_schema(OPERATIONS["compare"].image_fields, CompareParams),
)
async def compare(
    request: Request,
    services: ServicesDep,
    blocking: BlockingDep,
    request_id: RequestIdDep,
    caller: CallerDep,
) -> dict[str, Any]:
    """Similarity in [0, 1], distance, threshold, match, and the face used on each side."""
    return await _run_sync("compare", request, services, blocking, request_id, caller)
