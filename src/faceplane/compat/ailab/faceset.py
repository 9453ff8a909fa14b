"""AILab face database: groups (collections), users (subjects, `uid`), faces and 1:N search.

Callers name groups and users themselves, so a `group_id` is a collection's name and a `uid`
a subject's name within it; both are unique, which makes a duplicate answer
ERROR_USER_GROUP_ALREADY_EXISTS or ERROR_USER_ALREADY_EXISTS straight from the service.
Resolving those names to ids is part of parsing (`parse.find_group`, `parse.find_user`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from faceplane.api.deps import RequestIdDep, RuntimeDep
from faceplane.api.inputs import parse_body
from faceplane.compat.ailab import render as ailab
from faceplane.compat.ailab.parse import (
    AilabCallerDep,
    AilabWriterDep,
    find_group,
    find_user,
    operation_options,
    required_text,
    text_arg,
)
from faceplane.services import collections as col
from faceplane.services.usage import run_billed

router = APIRouter()

PageLimit = Annotated[int, Query(ge=1, le=1000)]
PageCursor = Annotated[str | None, Query(description="`next_cursor` of the previous page.")]


@router.post("/api/face/group/create", summary="Create a group (a gallery)")
async def create_group(
    request: Request, rt: RuntimeDep, request_id: RequestIdDep, caller: AilabWriterDep
) -> JSONResponse:
    """`group_id` (the group's name); a duplicate is ERROR_USER_GROUP_ALREADY_EXISTS."""
    body = await parse_body(request, ())
    group_id = required_text(body.values, "group_id")
    description = text_arg(body.values, "description", required=False) or ""
    row = await rt.run_io(
        col.create_collection, rt, caller.company_id, group_id, "gallery", description
    )
    return ailab.reply(request_id, {"data": ailab.group_data(row)})


@router.get("/api/face/group/list", summary="The caller's groups")
async def list_groups(
    rt: RuntimeDep,
    request_id: RequestIdDep,
    caller: AilabCallerDep,
    limit: PageLimit = 100,
    cursor: PageCursor = None,
) -> JSONResponse:
    """Paginated with `next_cursor`."""
    page = await rt.run_io(col.list_collections, rt, caller.company_id, limit, cursor)
    return ailab.reply(request_id, {"data": ailab.group_list_data(page)})


@router.post("/api/face/group/delete", summary="Delete a group with its users and faces")
async def delete_group(
    request: Request, rt: RuntimeDep, request_id: RequestIdDep, caller: AilabWriterDep
) -> JSONResponse:
    """Users, faces, vectors and crops are deleted for real."""
    body = await parse_body(request, ())
    group_id = required_text(body.values, "group_id")
    group = await find_group(rt, caller.company_id, group_id)
    await rt.run_io(col.delete_collection, rt, caller.company_id, group["id"])
    return ailab.reply(request_id, {"data": {"group_id": group_id}})


@router.post("/api/face/user/add", summary="Add a user (a person) to a group")
async def add_user(
    request: Request, rt: RuntimeDep, request_id: RequestIdDep, caller: AilabWriterDep
) -> JSONResponse:
    """`group_id`, `uid`, optional `user_info`; a duplicate is ERROR_USER_ALREADY_EXISTS."""
    body = await parse_body(request, ())
    group_id = required_text(body.values, "group_id")
    uid = required_text(body.values, "uid")
    info = body.values.get("user_info")
    metadata = {} if info is None else {"user_info": str(info)}
    group = await find_group(rt, caller.company_id, group_id)
    row = await rt.run_io(
        col.create_subject, rt, caller.company_id, group["id"], uid, None, metadata
    )
    return ailab.reply(request_id, {"data": ailab.user_data(row, group_id)})


@router.get("/api/face/user/list", summary="The users of a group")
async def list_users(
    rt: RuntimeDep,
    request_id: RequestIdDep,
    caller: AilabCallerDep,
    group_id: Annotated[str | None, Query()] = None,
    limit: PageLimit = 100,
    cursor: PageCursor = None,
) -> JSONResponse:
    """Paginated with `next_cursor`."""
    name = required_text({"group_id": group_id}, "group_id")
    group = await find_group(rt, caller.company_id, name)
    page = await rt.run_io(col.list_subjects, rt, caller.company_id, group["id"], limit, cursor)
    return ailab.reply(request_id, {"data": ailab.user_list_data(page, name)})


@router.post("/api/face/user/delete", summary="Delete a user and its faces")
async def delete_user(
    request: Request, rt: RuntimeDep, request_id: RequestIdDep, caller: AilabWriterDep
) -> JSONResponse:
    """Its faces, vectors and crops are deleted for real."""
    body = await parse_body(request, ())
    group_id = required_text(body.values, "group_id")
    uid = required_text(body.values, "uid")
    user = await find_user(rt, caller.company_id, group_id, uid)
    await rt.run_io(col.delete_subject, rt, caller.company_id, user["collection_id"], user["id"])
    return ailab.reply(request_id, {"data": {"group_id": group_id, "uid": uid}})


@router.post("/api/face/face/add", summary="Enroll the face of an image into a user")
async def add_face(
    request: Request, rt: RuntimeDep, request_id: RequestIdDep, caller: AilabWriterDep
) -> JSONResponse:
    """`group_id`, `uid`, `image`; `face`: largest (default), all or an index. Answers with
    `face_token`; a face that fails the quality gate is refused with the reason's code."""
    body = await parse_body(request, ("image",))
    group_id = required_text(body.values, "group_id")
    uid = required_text(body.values, "uid")
    user = await find_user(rt, caller.company_id, group_id, uid)
    options = operation_options("enroll", body.values)
    options.update(collection_id=user["collection_id"], subject_id=user["id"])
    out = await run_billed(rt, caller, "enroll", {"image": body.image("image")}, options)
    return ailab.reply(request_id, {"data": ailab.enroll_data(out, group_id, uid)})


@router.post("/api/face/face/delete", summary="Delete one face by its token")
async def delete_face(
    request: Request, rt: RuntimeDep, request_id: RequestIdDep, caller: AilabWriterDep
) -> JSONResponse:
    """`group_id` and `face_token`; an unknown token is ERROR_FACE_TOKEN_NOT_FOUND."""
    body = await parse_body(request, ())
    group_id = required_text(body.values, "group_id")
    token = required_text(body.values, "face_token")
    group = await find_group(rt, caller.company_id, group_id)
    await rt.run_io(col.delete_face, rt, caller.company_id, group["id"], token)
    return ailab.reply(request_id, {"data": {"group_id": group_id, "face_token": token}})


@router.post("/api/face/search", summary="1:N search of a group with an image or a face token")
async def search(
    request: Request, rt: RuntimeDep, request_id: RequestIdDep, caller: AilabCallerDep
) -> JSONResponse:
    """`group_id` and `image` (or `face_token`); `max_user_num` (1-100, default 5), `far`,
    `all_faces`. `user_list` is empty when nobody passes the threshold."""
    body = await parse_body(request, ("image",))
    group_id = required_text(body.values, "group_id")
    group = await find_group(rt, caller.company_id, group_id)
    options: dict[str, Any] = operation_options("search", body.values)
    options["collection_id"] = group["id"]
    images = {}
    if "image" in body.images or "face_token" not in options:
        # Without either, the image is what is missing: MISSING_PARAMETERS names it.
        images["image"] = body.image("image")
    out = await run_billed(rt, caller, "search", images, options)
    return ailab.reply(request_id, {"data": ailab.search_data(out, group_id)})
