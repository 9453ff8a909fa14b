"""Oz Forensics compatible routes (seeds 002, 004): login, folders of media, analyses, containers.

Every error raised here is rendered in Oz's shape ({error_code, error_message, details}) by the
central handler, because the path starts with /compat/oz/. A folder is an analysis session
(faceplane.services.sessions); an analysis is a task (its id is the task's request_id): it runs
on the workers and is polled with GET /analyses/{id}/. Each route parses (parse.py), makes one
service call off the event loop, and renders (render.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request, Response

from faceplane.api.auth import CallerDep, WriterDep
from faceplane.api.deps import RuntimeDep, TaskHubDep, client_address
from faceplane.compat.oz import parse
from faceplane.compat.oz import render as oz
from faceplane.errors import Err, FaceplaneError
from faceplane.services import logins, sessions, usage
from faceplane.services import oz_container as container
from faceplane.services import session_analyses as analyses

router = APIRouter(prefix="/compat/oz/api", tags=["compat-oz"])
Endpoint = Callable[..., Any]

# Documented Oz routes this server does not offer: they answer NOT REALIZED (2), never 500.
NOT_REALIZED_ROUTES = (
    ("GET", "/folders/"),
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


@_route("POST", "/authorize/auth/")
async def authorize(request: Request, rt: RuntimeDep) -> dict[str, Any]:
    """Exchange `credentials` {email, password} for an access token and an expire_token."""
    email, password = parse.read_credentials(await parse.read_object(request))
    return oz.render_login(await logins.log_in(rt, email, password, client_address(request)))


@_route("POST", "/authorize/refresh/")
async def refresh(request: Request, rt: RuntimeDep) -> dict[str, Any]:
    """A new token pair for a valid `expire_token`, which is spent."""
    token = parse.read_text(await parse.read_object(request), "expire_token")
    return oz.render_login(await logins.renew(rt, token, client_address(request)))


@_route("GET", "/authorize/session_token/")
async def session_token(rt: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    """A session token: the key that signs a data container of the caller's company."""
    # One HMAC, no I/O: nothing here blocks the loop.
    token, expires = container.session_token(rt, caller.company_id)
    return {"session_token": token, "expire_date": expires}


async def _from_container(request: Request, rt: RuntimeDep, caller: WriterDep) -> dict[str, Any]:
    data = await request.body()
    folder = await rt.run_io(
        container.create_folder_from_container, rt, caller.company_id, caller.actor, data
    )
    return oz.render_folder(folder)


@_route("POST", "/folders/", 201)
async def create_folder(request: Request, rt: RuntimeDep, caller: WriterDep) -> dict[str, Any]:
    """A folder of photos (multipart; tags in `payload`), or of a data container (octet-stream)."""
    ctype = parse.content_type(request)
    if ctype == "application/octet-stream":
        return await _from_container(request, rt, caller)
    if ctype != "multipart/form-data":
        raise FaceplaneError(
            Err.INVALID_ARGUMENT,
            "Send media as multipart/form-data, or a data container as application/octet-stream.",
            content_type=ctype,
        )
    uploads, payload = await parse.read_folder_form(request)
    folder = await rt.run_io(
        container.create_folder, rt, caller.company_id, caller.actor, uploads, payload
    )
    return oz.render_folder(folder)


@_route("POST", "/folders/from_container/", 201)
async def create_folder_from_container(
    request: Request, rt: RuntimeDep, caller: WriterDep
) -> dict[str, Any]:
    """A folder of the media of a data container sent as the raw body."""
    return await _from_container(request, rt, caller)


@_route("GET", "/folders/{folder_id}/")
async def get_folder(folder_id: str, rt: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    """A folder: its media, its analyses and its resolution_status."""
    fid = parse.parse_id(folder_id, "folder_id")
    return oz.render_folder(await rt.run_io(sessions.get_session, rt, caller.company_id, fid))


@_route("DELETE", "/folders/{folder_id}/", 204)
async def delete_folder(folder_id: str, rt: RuntimeDep, caller: WriterDep) -> Response:
    """Delete a folder for real: its media, its analyses' inputs and results."""
    fid = parse.parse_id(folder_id, "folder_id")
    await rt.run_io(sessions.delete_session, rt, caller.company_id, fid)
    return Response(status_code=204)


@_route("POST", "/folders/{folder_id}/analyses/", 201)
async def add_analyses(
    folder_id: str, request: Request, rt: RuntimeDep, hub: TaskHubDep, caller: WriterDep
) -> list[dict[str, Any]]:
    """Start BIOMETRY and COLLECTION analyses on the folder's media; they answer PROCESSING."""
    fid = parse.parse_id(folder_id, "folder_id")
    wanted, hook = parse.read_analyses(await parse.read_object(request))

    async def work() -> list[sessions.Analysis]:
        return await rt.run_io(analyses.start_analyses, rt, caller.company_id, fid, wanted, hook)

    created = await usage.billed(rt, caller, analyses.analysis_costs(wanted), work)
    hub.queued([a.task_id for a in created])  # returns at once: the hub publishes off the loop
    return [oz.render_analysis(a) for a in created]


@_route("GET", "/analyses/{analysis_id}/")
async def get_analysis(analysis_id: str, rt: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    """An analysis: state, resolution_status and its measured values once finished."""
    aid = parse.parse_id(analysis_id, "analysis_id")
    return oz.render_analysis(await rt.run_io(analyses.get_analysis, rt, caller.company_id, aid))


async def not_realized(request: Request, caller: CallerDep) -> None:
    """A documented Oz route this server does not offer: NOT REALIZED (2)."""
    raise FaceplaneError(
        Err.NOT_IMPLEMENTED,
        f"{request.method} {request.url.path} is not realized on this server.",
    )


for _method, _path in NOT_REALIZED_ROUTES:
    _route(_method, _path)(not_realized)
