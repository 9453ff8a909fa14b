"""GET /v1/health and GET /v1/models."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from faceplane import __version__
from faceplane.api.auth import CallerDep
from faceplane.api.deps import RequestIdDep, RuntimeDep
from faceplane.api.render import render_result

router = APIRouter(prefix="/v1", tags=["meta"])


@router.get("/health", summary="Liveness of the server and which models are installed")
async def health(rt: RuntimeDep, request_id: RequestIdDep) -> dict[str, Any]:
    """`ok` when the default detector and embedder are installed, else `degraded`."""
    models = rt.pool.status()
    missing = [m["name"] for m in models if not m["present"]]
    needed = {rt.pool.detector_model(rt.settings.detector), "dlib_5pt", "dlib_resnet"}
    status = "degraded" if needed & set(missing) else "ok"
    return render_result(
        request_id, {"status": status, "version": __version__, "missing_models": missing}
    )


@router.get("/models", summary="Installed models: task, version, sha256, licence, state")
async def models(rt: RuntimeDep, request_id: RequestIdDep, caller: CallerDep) -> dict[str, Any]:
    """Every model of the registry and whether it is present and loaded."""
    return render_result(request_id, {"models": rt.pool.status()})
