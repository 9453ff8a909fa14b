"""Oz Forensics compatible routes (seeds 002, 004): login, folders of media, analyses, containers.

Every error raised here is rendered in Oz's shape ({error_code, error_message, details}) by the
central handler, because the path starts with /compat/oz/. Analyses are tasks (the analysis id
is the task's request_id): they run on the workers and are polled with GET /analyses/{id}/.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from faceplane.api.auth import CallerDep, WriterDep
from faceplane.api.deps import RuntimeDep, SettingsDep, StoreDep, TaskHubDep
from faceplane.errors import Err, FaceplaneError
from faceplane.runtime import Runtime
from faceplane.services import accounts, usage
from faceplane.services import oz_container as container
from faceplane.services import oz_folders as folders
from faceplane.services.accounts import Principal
from faceplane.services.oz_folders import AnalysisRequest, Upload
from faceplane.store import Store

router = APIRouter(prefix="/compat/oz/api", tags=["compat-oz"])
Endpoint = Callable[..., Any]
MAX_ANALYSES = 10

# Documented Oz routes this server does not offer: they answer NOT REALIZED (2), never 500.
NOT_REALIZED_ROUTES = (
    ("GET", "/folders/"),
    ("DELETE", "/folders/{folder_id}/"),
    ("POST", "/folders/{folder_id}/media/"),
    ("PATCH", "/media/{media_id}/"),
    ("GET", "/analyses/"),
    ("POST", "/instant/folders/"),
)


def _route(method: str, path: str, status_code: int = 200) -> Callable[[Endpoint], Endpoint]:
    """Register `path` with and without its trailing slash: Oz's pages use both spellings."""

    def register(fn: Endpoint) -> Endpoint:
        for p, shown in ((path, True), (path.rstrip("/"), False)):
            router.add_api_route(
                p,
                fn,
                methods=[method],
                status_code=status_code,
                response_model=None,
                include_in_schema=shown,
            )
        return fn

    return register


async def _json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object."""
    try:
        body = json.loads(await request.body())
    except ValueError:
        body = None
    if not isinstance(body, dict):
        # Seed 004: a body "in an incorrect format" is INVALID STRUCTURE (3), not 4.
        raise FaceplaneError(Err.MISSING_ARGUMENT, "The body must be a JSON object.")
    return body


def _text(obj: dict[str, Any], name: str) -> str:
    """A required string field: missing is INVALID STRUCTURE (3), not a string INVALID TYPE (5)."""
    value = obj.get(name)
    if value is None:
        raise FaceplaneError(Err.MISSING_ARGUMENT, f"`{name}` is required.", field=name)
    if not isinstance(value, str):
        raise FaceplaneError(Err.INVALID_TYPE, f"`{name}` must be a string.", field=name)
    return value


def _session(store: Store, tokens: dict[str, Any]) -> dict[str, Any]:
    """Oz's answer to a login or a renewal: the token pair, its expiry and the user."""
    who = accounts.authenticate_token(store, tokens["access_token"])
    user = next(u for u in accounts.list_users(store, who.company_id) if u["id"] == who.user_id)
    return {
        "access_token": tokens["access_token"],
        # Oz's expire_token is what renews the pair (POST /authorize/refresh/): ours is the
        # refresh token.
        "expire_token": tokens["refresh_token"],
        "expire_date": round(time.time() + tokens["expires_in"], 3),
        "user": {
            "user_id": user["id"],
            "email": user["email"],
            "company_id": user["company_id"],
            "user_type": user["role"].upper(),
            "is_admin": user["role"] == "admin",
            "is_service": False,
        },
    }


@_route("POST", "/authorize/auth/")
async def authorize(request: Request, store: StoreDep, settings: SettingsDep) -> dict[str, Any]:
    """Exchange `credentials` {email, password} for an access token and an expire_token."""
    body = await _json_object(request)
    creds = body.get("credentials")
    if creds is None:
        raise FaceplaneError(
            Err.MISSING_ARGUMENT, "`credentials` is required.", field="credentials"
        )
    if not isinstance(creds, dict):
        raise FaceplaneError(
            Err.INVALID_TYPE, "`credentials` must be an object.", field="credentials"
        )
    email, password = _text(creds, "email"), _text(creds, "password")
    tokens = await run_in_threadpool(
        accounts.login,
        store,
        email,
        password,
        settings.access_token_ttl_s,
        settings.refresh_token_ttl_s,
    )
    return await run_in_threadpool(_session, store, tokens)


@_route("POST", "/authorize/refresh/")
async def refresh(request: Request, store: StoreDep, settings: SettingsDep) -> dict[str, Any]:
    """A new token pair for a valid `expire_token`, which is spent."""
    token = _text(await _json_object(request), "expire_token")
    tokens = await run_in_threadpool(
        accounts.refresh_tokens,
        store,
        token,
        settings.access_token_ttl_s,
        settings.refresh_token_ttl_s,
    )
    return await run_in_threadpool(_session, store, tokens)


@_route("GET", "/authorize/session_token/")
def session_token(store: StoreDep, settings: SettingsDep, caller: CallerDep) -> dict[str, Any]:
    """A session token: the key that signs a data container of the caller's company."""
    token, expires = container.issue_session_token(
        store.secret, caller.company_id, settings.access_token_ttl_s
    )
    return {"session_token": token, "expire_date": expires}


async def _from_container(
    request: Request, rt: Runtime, store: Store, caller: Principal
) -> dict[str, Any]:
    data = await request.body()
    uploads, tags, meta = await run_in_threadpool(
        container.unpack_container,
        data,
        caller.company_id,
        store.secret,
        rt.limits.max_bytes * folders.MAX_MEDIA,
    )
    return await _new_folder(rt, store, caller, uploads, tags, meta)


async def _new_folder(
    rt: Runtime,
    store: Store,
    caller: Principal,
    uploads: list[Upload],
    tags: dict[str, list[str]],
    meta: dict[str, Any],
) -> dict[str, Any]:
    folder = await run_in_threadpool(
        folders.create_folder, rt, store, caller.company_id, caller.actor, uploads, tags, meta
    )
    return await run_in_threadpool(folders.render_folder, rt, store, folder, [])


@_route("POST", "/folders/", 201)
async def create_folder(
    request: Request, rt: RuntimeDep, store: StoreDep, caller: WriterDep
) -> dict[str, Any]:
    """A folder of photos (multipart; tags in `payload`), or of a data container (octet-stream)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/octet-stream":
        return await _from_container(request, rt, store, caller)
    if ctype != "multipart/form-data":
        raise FaceplaneError(
            Err.INVALID_ARGUMENT,
            "Send media as multipart/form-data, or a data container as application/octet-stream.",
            content_type=ctype,
        )
    form = await request.form()
    uploads, payload = [], {}
    for key, value in form.multi_items():
        if isinstance(value, UploadFile):
            uploads.append(Upload(key, value.filename or key, await value.read()))
        elif key == "payload":
            try:
                payload = json.loads(value)
            except ValueError:
                raise FaceplaneError(
                    Err.INVALID_ARGUMENT, "`payload` is not valid JSON.", field="payload"
                ) from None
    tags, meta = folders.read_payload(payload)
    return await _new_folder(rt, store, caller, uploads, tags, meta)


@_route("POST", "/folders/from_container/", 201)
async def create_folder_from_container(
    request: Request, rt: RuntimeDep, store: StoreDep, caller: WriterDep
) -> dict[str, Any]:
    """A folder of the media of a data container sent as the raw body."""
    return await _from_container(request, rt, store, caller)


@_route("GET", "/folders/{folder_id}/")
def get_folder(
    folder_id: str, rt: RuntimeDep, store: StoreDep, caller: CallerDep
) -> dict[str, Any]:
    """A folder: its media, its analyses and its resolution_status."""
    fid = folders.parse_id(folder_id, "folder_id")
    return folders.get_folder(rt, store, caller.company_id, fid)


def _parse_analyses(body: dict[str, Any]) -> tuple[list[AnalysisRequest], str | None]:
    """The requested analyses and the optional `resolution_endpoint` (a webhook URL)."""
    items = body.get("analyses")
    if items is None:
        raise FaceplaneError(Err.MISSING_ARGUMENT, "`analyses` is required.", field="analyses")
    if not isinstance(items, list):
        raise FaceplaneError(Err.INVALID_TYPE, "`analyses` must be a list.", field="analyses")
    if not items or len(items) > MAX_ANALYSES:
        raise FaceplaneError(
            Err.INVALID_ARGUMENT, f"`analyses` holds 1 to {MAX_ANALYSES} items.", field="analyses"
        )
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise FaceplaneError(Err.INVALID_TYPE, "Each analysis must be an object.", item=i)
        kind = _text(item, "type").upper()
        if kind in folders.NOT_REALIZED_TYPES:
            raise FaceplaneError(
                Err.NOT_IMPLEMENTED,
                f"{kind} analyses are not realized on this server yet.",
                type=kind,
                item=i,
            )
        if kind not in folders.OPERATIONS:
            raise FaceplaneError(
                Err.INVALID_ARGUMENT, f"Unknown analysis type {item['type']!r}.", item=i
            )
        source = item.get("source_media")
        if source is not None and (
            not isinstance(source, list) or not all(isinstance(s, str) for s in source)
        ):
            raise FaceplaneError(
                Err.INVALID_TYPE, "`source_media` must be a list of media ids.", item=i
            )
        ids = None if source is None else [folders.parse_id(s, "source_media") for s in source]
        out.append(AnalysisRequest(kind, ids))
    hook = body.get("resolution_endpoint")
    if hook is not None and not isinstance(hook, str):
        raise FaceplaneError(Err.INVALID_TYPE, "`resolution_endpoint` must be a URL string.")
    return out, hook or None


@_route("POST", "/folders/{folder_id}/analyses/", 201)
async def add_analyses(
    folder_id: str,
    request: Request,
    rt: RuntimeDep,
    store: StoreDep,
    hub: TaskHubDep,
    caller: WriterDep,
) -> list[dict[str, Any]]:
    """Start BIOMETRY and COLLECTION analyses on the folder's media; they answer PROCESSING."""
    fid = folders.parse_id(folder_id, "folder_id")
    wanted, hook = _parse_analyses(await _json_object(request))
    folder = await run_in_threadpool(folders.load_folder, store, caller.company_id, fid)
    costs: dict[str, int] = {}
    for req in wanted:
        op = folders.OPERATIONS[req.type]
        costs[op] = costs.get(op, 0) + 1

    async def work() -> list[dict[str, Any]]:
        return await rt.run_io(
            folders.start_analyses, rt, store, caller.company_id, folder, wanted, hook
        )

    created = await usage.billed(rt, caller, costs, work)
    hub.queued([a["analyse_id"] for a in created])
    return created


@_route("GET", "/analyses/{analysis_id}/")
def get_analysis(
    analysis_id: str, rt: RuntimeDep, store: StoreDep, caller: CallerDep
) -> dict[str, Any]:
    """An analysis: state, resolution_status and its measured values once finished."""
    aid = folders.parse_id(analysis_id, "analysis_id")
    return folders.get_analysis(rt, store, caller.company_id, aid)


async def not_realized(request: Request, caller: CallerDep) -> None:
    """A documented Oz route this server does not offer: NOT REALIZED (2)."""
    raise FaceplaneError(
        Err.NOT_IMPLEMENTED,
        f"{request.method} {request.url.path} is not realized on this server.",
    )


for _method, _path in NOT_REALIZED_ROUTES:
    _route(_method, _path)(not_realized)
