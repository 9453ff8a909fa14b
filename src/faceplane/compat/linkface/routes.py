"""Linkface compatible routes (seed 003): detection, 1:1 verification and 1:N search.

Requests carry `api_id` and `api_secret` (Linkface's credentials: an APP_ID and its KEY) or
the native headers; images come as a `file` upload or a `url`. Answers have `status: "OK"`
and `request_id`; errors `status`, `reason`, `request_id` with the seed's HTTP codes, and an
image error names the client's field (`file2`, `url`) in `image`; every authenticated answer
carries X-RateLimit-Limit/Remaining/Reset.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from faceplane.api.auth import apply_rate_limit, authenticate
from faceplane.api.deps import RequestIdDep, RuntimeDep
from faceplane.compat.linkface import parse, render
from faceplane.compat.linkface.parse import LinkfaceForm
from faceplane.runtime import Runtime
from faceplane.services import accounts
from faceplane.services.accounts import Principal
from faceplane.services.usage import run_billed

router = APIRouter(prefix="/compat/linkface", tags=["compat-linkface"])


async def _call(request: Request, rt: Runtime) -> tuple[LinkfaceForm, Principal]:
    """The call's fields and files (strictly UTF-8), and the authenticated, counted caller."""
    query = parse.parse_query(request.scope.get("query_string", b""))
    body = await request.body()
    form = await rt.run_blocking(parse.parse_form, request.headers.get("content-type", ""), body)
    form.fields = {**query, **form.fields}
    if "api_id" in form.fields or "api_secret" in form.fields:
        principal = await rt.run_io(
            accounts.authenticate_app_key,
            rt,
            form.fields.get("api_id", ""),
            form.fields.get("api_secret", ""),
        )
    else:
        principal = await authenticate(request)
    request.scope["state"]["principal"] = principal
    await apply_rate_limit(request, principal)
    return form, principal


def _json(answer: tuple[int, dict[str, Any]]) -> JSONResponse:
    status, body = answer
    return JSONResponse(body, status_code=status)


@router.post("/face/detection", summary="Linkface: detect faces (file or url)")
async def detection(request: Request, rt: RuntimeDep, request_id: RequestIdDep) -> JSONResponse:
    """`faces` with `rect {left, top, right, bottom}`, confidence, landmarks and pose."""
    form, principal = await _call(request, rt)
    images = {"image": parse.image_source(form)}
    body = await run_billed(rt, principal, "detect", images, parse.detection_options(form))
    return _json(render.render_detection(request_id, body))


@router.post("/identity/verification", summary="Linkface: are two faces the same person?")
async def verification(request: Request, rt: RuntimeDep, request_id: RequestIdDep) -> JSONResponse:
    """`confidence` (the calibrated similarity), `is_same_person`, `threshold`."""
    form, principal = await _call(request, rt)
    images = {"image1": parse.image_source(form, "1"), "image2": parse.image_source(form, "2")}
    body = await run_billed(rt, principal, "compare", images, {})
    return _json(render.render_verification(request_id, body))


@router.post("/face/search", summary="Linkface: search a collection (collection_id)")
async def search(request: Request, rt: RuntimeDep, request_id: RequestIdDep) -> JSONResponse:
    """`candidates` of the largest face, best first, with the FAR threshold used."""
    form, principal = await _call(request, rt)
    options = parse.search_options(form)
    body = await run_billed(rt, principal, "search", {"image": parse.image_source(form)}, options)
    return _json(render.render_search(request_id, body))
