"""POST /v1/detect and POST /v1/compare."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from faceplane.api.deps import BlockingDep, RequestIdDep, ServicesDep
from faceplane.api.inputs import CompareParams, DetectParams, image_body_schema, parse_body
from faceplane.dialects.native import render_result
from faceplane.services.faces import (
    CompareSide,
    DetectRequest,
    compare_faces,
    detect_faces,
)

router = APIRouter(prefix="/v1", tags=["faces"])

DETECT_FIELDS = ("image",)
COMPARE_FIELDS = ("image1", "image2")


def _detect_request(p: DetectParams) -> DetectRequest:
    return DetectRequest(
        max_faces=p.max_faces,
        min_face_size=p.min_face_size,
        det_threshold=p.det_threshold,
        landmarks=p.landmarks,
        return_embedding=p.return_embedding,
        detector=p.detector,
    )


@router.post(
    "/detect",
    summary="Detect faces with landmarks, quality and optional embeddings",
    openapi_extra=image_body_schema(DETECT_FIELDS, DetectParams, raw=True),
)
async def detect(
    request: Request, services: ServicesDep, blocking: BlockingDep, request_id: RequestIdDep
) -> dict[str, Any]:
    """Faces sorted by size, largest first: box, score, landmarks, quality, embedding."""
    body = await parse_body(request, DETECT_FIELDS)
    params = DetectParams.model_validate(body.values)
    result = await blocking.run(
        detect_faces, services, body.image("image"), _detect_request(params)
    )
    return render_result(request_id, result)


@router.post(
    "/compare",
    summary="Compare two faces 1:1 with the calibrated threshold",
    openapi_extra=image_body_schema(COMPARE_FIELDS, CompareParams),
)
async def compare(
    request: Request, services: ServicesDep, blocking: BlockingDep, request_id: RequestIdDep
) -> dict[str, Any]:
    """Similarity in [0, 1], distance, threshold, match, and the face used on each side."""
    body = await parse_body(request, COMPARE_FIELDS)
    params = CompareParams.model_validate(body.values)
    side1 = CompareSide(
        image=None if params.embedding1 else body.image("image1"),
        embedding=params.embedding1,
        face_index=params.face_index1,
    )
    side2 = CompareSide(
        image=None if params.embedding2 else body.image("image2"),
        embedding=params.embedding2,
        face_index=params.face_index2,
    )
    result = await blocking.run(compare_faces, services, side1, side2, _detect_request(params))
    return render_result(request_id, result)
