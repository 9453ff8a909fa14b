"""Linkface compatible routes (seed 003): detection, 1:1 verification and 1:N search.

Requests carry `api_id` and `api_secret` (Linkface's credentials: an APP_ID and its KEY) or
the native headers; images come as a `file` upload or a `url`. Answers have `status: "OK"`
and `request_id`; errors `status`, `reason`, `request_id` with the seed's HTTP codes; and
every authenticated answer carries X-RateLimit-Limit/Remaining/Reset.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from faceplane.api.auth import apply_rate_limit, authenticate
from faceplane.api.deps import RequestIdDep, get_runtime
from faceplane.compat.linkface import render as linkface
from faceplane.errors import Err, FaceplaneError
from faceplane.services import accounts
from faceplane.services.accounts import Principal
from faceplane.services.images import ImageSource
from faceplane.services.usage import run_billed

router = APIRouter(prefix="/compat/linkface", tags=["compat-linkface"])


async def _form(request: Request) -> tuple[dict[str, str], dict[str, bytes]]:
    """Text fields and files; a parameter that is not UTF-8 is ENCODING_ERROR."""
    try:
        query = dict(parse_qsl(request.url.query, encoding="utf-8", errors="strict"))
    except UnicodeDecodeError:
        raise FaceplaneError(Err.ENCODING_ERROR, "A query parameter is not UTF-8.") from None
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    fields, files = dict(query), {}
    if ctype == "application/x-www-form-urlencoded":
        raw = (await request.body()).decode("latin-1")
        try:
            fields.update(parse_qsl(raw, encoding="utf-8", errors="strict"))
        except UnicodeDecodeError:
            raise FaceplaneError(Err.ENCODING_ERROR, "A parameter is not UTF-8.") from None
    elif ctype == "multipart/form-data":
        form = await request.form()
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                files[name] = await value.read()
            else:
                fields[name] = value
    elif ctype:
        raise FaceplaneError(
            Err.INVALID_ARGUMENT, "Send multipart/form-data or application/x-www-form-urlencoded."
        )
    return fields, files


async def _caller(request: Request, fields: dict[str, str]) -> Principal:
    """api_id + api_secret (Linkface), or any native credential; then the rate limit."""
    if "api_id" in fields or "api_secret" in fields:
        principal = await run_in_threadpool(
            accounts.authenticate_key, get_runtime(request).store, fields.get("api_secret", "")
        )
        if principal.app_id != fields.get("api_id"):
            raise FaceplaneError(Err.AUTH_INVALID, "api_id and api_secret do not match.")
    else:
        principal = await authenticate(request)
    request.scope["state"]["principal"] = principal
    await apply_rate_limit(request, principal)
    return principal


def _image(fields: dict[str, str], files: dict[str, bytes], suffix: str, field: str) -> ImageSource:
    data = files.get("file" + suffix)
    url = fields.get("url" + suffix)
    if data is None and not url:
        raise FaceplaneError(
            Err.INVALID_ARGUMENT, f"must specify 'file{suffix}' or 'url{suffix}' argument"
        )
    if data is not None:
        return ImageSource(field, data=data)
    return ImageSource(field, url=url)


def _ok(request_id: str, data: dict[str, Any]) -> JSONResponse:
    status, body = linkface.render_success(request_id, data)
    return JSONResponse(body, status_code=status)


def _face(face: dict[str, Any]) -> dict[str, Any]:
    b = face["box"]
    out = {
        "rect": {
            "left": round(b["x"]),
            "top": round(b["y"]),
            "right": round(b["x"] + b["width"]),
            "bottom": round(b["y"] + b["height"]),
        },
        "confidence": face["score"],
        "landmarks": list(face["landmarks"].values()),  # Linkface's points: [x, y] in order
        "yaw": face["quality"]["yaw"],
        "pitch": face["quality"]["pitch"],
        "roll": face["quality"]["roll"],
        "quality": face["quality"],
    }
    if "embedding" in face:
        out["feature"] = face["embedding"]
    return out


@router.post("/face/detection", summary="Linkface: detect faces (file or url)")
async def detection(request: Request, request_id: RequestIdDep) -> JSONResponse:
    """`faces` with `rect {left, top, right, bottom}`, confidence, landmarks and pose."""
    fields, files = await _form(request)
    principal = await _caller(request, fields)
    body = await run_billed(
        get_runtime(request),
        principal,
        "detect",
        {"image": _image(fields, files, "", "image")},
        {"landmarks": (fields.get("landmarks68") == "true" and 68) or 5},
    )
    return _ok(request_id, {"faces": [_face(f) for f in body["faces"]], "image": body["image"]})


@router.post("/identity/verification", summary="Linkface: are two faces the same person?")
async def verification(request: Request, request_id: RequestIdDep) -> JSONResponse:
    """`confidence` (the calibrated similarity), `is_same_person`, `threshold`."""
    fields, files = await _form(request)
    principal = await _caller(request, fields)
    images = {
        "image1": _image(fields, files, "1", "image1"),
        "image2": _image(fields, files, "2", "image2"),
    }
    body = await run_billed(get_runtime(request), principal, "compare", images, {})
    return _ok(
        request_id,
        {
            "confidence": body["similarity"],
            "is_same_person": body["match"],
            "threshold": body["threshold"],
            "distance": body["distance"],
        },
    )


@router.post("/face/search", summary="Linkface: search a collection (collection_id)")
async def search(request: Request, request_id: RequestIdDep) -> JSONResponse:
    """`candidates` of the largest face, best first, with the FAR threshold used."""
    fields, files = await _form(request)
    principal = await _caller(request, fields)
    if not fields.get("collection_id"):
        raise FaceplaneError(Err.INVALID_ARGUMENT, "must specify 'collection_id' argument")
    options = {"collection_id": fields["collection_id"], "k": fields.get("top", 5)}
    body = await run_billed(
        get_runtime(request),
        principal,
        "search",
        {"image": _image(fields, files, "", "image")},
        options,
    )
    face = body["faces"][0]
    return _ok(
        request_id,
        {
            "candidates": [
                {
                    "person_id": m["subject_id"],
                    "name": m["subject_name"],
                    "face_id": m["face_token"],
                    "confidence": m["similarity"],
                }
                for m in face["matches"]
            ],
            "threshold": face["threshold"],
        },
    )
