"""AILab face database: groups (collections), users (subjects, `uid`), faces and 1:N search.

Callers name groups and users themselves, so a `group_id` is a collection's name and a `uid`
a subject's name within it; both are unique, which makes a duplicate answer
ERROR_USER_GROUP_ALREADY_EXISTS or ERROR_USER_ALREADY_EXISTS straight from the rt.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy import and_, select
from starlette.concurrency import run_in_threadpool

from faceplane.api.deps import RequestIdDep, RuntimeDep, StoreDep, get_runtime
from faceplane.api.inputs import parse_body
from faceplane.compat.ailab.parse import (
    AilabCallerDep,
    AilabWriterDep,
    reply,
    required_text,
    text_arg,
)
from faceplane.errors import Err, FaceplaneError
from faceplane.services import collections as col
from faceplane.services.usage import run_billed
from faceplane.store import Store
from faceplane.store.db import collections, subjects

router = APIRouter()


def group_id_of(store: Store, company_id: str, group_id: str) -> str:
    """The id of the caller's collection named `group_id`, or ERROR_USER_GROUP_NOT_FOUND."""
    with store.db.connect() as conn:
        found = conn.execute(
            select(collections.c.id).where(
                and_(collections.c.company_id == company_id, collections.c.name == group_id)
            )
        ).scalar_one_or_none()
    if found is None:
        raise FaceplaneError(
            Err.COLLECTION_NOT_FOUND, f"There is no group {group_id!r}.", group_id=group_id
        )
    return str(found)


def user_id_of(store: Store, company_id: str, group_id: str, uid: str) -> tuple[str, str]:
    """(collection id, subject id) of `uid` in `group_id`, or the missing one's NOT_FOUND."""
    cid = group_id_of(store, company_id, group_id)
    with store.db.connect() as conn:
        found = conn.execute(
            select(subjects.c.id).where(
                and_(subjects.c.collection_id == cid, subjects.c.name == uid)
            )
        ).scalar_one_or_none()
    if found is None:
        raise FaceplaneError(
            Err.SUBJECT_NOT_FOUND, f"There is no user {uid!r} in group {group_id!r}.", uid=uid
        )
    return cid, str(found)


def _group_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "group_id": row["name"],
        "kind": row["kind"],
        "user_num": row["subjects"],
        "face_num": row["faces"],
        "created_at": row["created_at"],
    }


@router.post("/api/face/group/create", summary="Create a group (a gallery)")
async def create_group(
    request: Request,
    rt: RuntimeDep,
    store: StoreDep,
    request_id: RequestIdDep,
    caller: AilabWriterDep,
) -> JSONResponse:
    """`group_id` (the group's name); a duplicate is ERROR_USER_GROUP_ALREADY_EXISTS."""
    body = await parse_body(request, ())
    group_id = required_text(body.values, "group_id")
    description = text_arg(body.values, "description", required=False) or ""
    row = await run_in_threadpool(
        col.create_collection,
        rt,
        caller.company_id,
        group_id,
        "gallery",
        description,
    )
    return reply(request_id, {"data": _group_json(row)})


@router.get("/api/face/group/list", summary="The caller's groups")
def list_groups(
    store: StoreDep,
    request_id: RequestIdDep,
    caller: AilabCallerDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page.")] = None,
) -> JSONResponse:
    """Paginated with `next_cursor`."""
    page = col.list_collections(store, caller.company_id, limit, cursor)
    groups = [_group_json(row) for row in page["collections"]]
    return reply(
        request_id,
        {
            "data": {
                "group_id_list": [g["group_id"] for g in groups],
                "groups": groups,
                "next_cursor": page["next_cursor"],
            }
        },
    )


@router.post("/api/face/group/delete", summary="Delete a group with its users and faces")
async def delete_group(
    request: Request, store: StoreDep, request_id: RequestIdDep, caller: AilabWriterDep
) -> JSONResponse:
    """Users, faces, vectors and crops are deleted for real."""
    body = await parse_body(request, ())
    group_id = required_text(body.values, "group_id")

    def work() -> None:
        col.delete_collection(
            store, caller.company_id, group_id_of(store, caller.company_id, group_id)
        )

    await run_in_threadpool(work)
    return reply(request_id, {"data": {"group_id": group_id}})


@router.post("/api/face/user/add", summary="Add a user (a person) to a group")
async def add_user(
    request: Request,
    rt: RuntimeDep,
    store: StoreDep,
    request_id: RequestIdDep,
    caller: AilabWriterDep,
) -> JSONResponse:
    """`group_id`, `uid`, optional `user_info`; a duplicate is ERROR_USER_ALREADY_EXISTS."""
    body = await parse_body(request, ())
    group_id = required_text(body.values, "group_id")
    uid = required_text(body.values, "uid")
    info = body.values.get("user_info")
    metadata = {} if info is None else {"user_info": str(info)}

    def work() -> dict[str, Any]:
        cid = group_id_of(store, caller.company_id, group_id)
        return col.create_subject(rt, caller.company_id, cid, uid, None, metadata)

    row = await run_in_threadpool(work)
    data = {"group_id": group_id, "uid": uid, "user_info": info, "created_at": row["created_at"]}
    return reply(request_id, {"data": data})


@router.get("/api/face/user/list", summary="The users of a group")
def list_users(
    store: StoreDep,
    request_id: RequestIdDep,
    caller: AilabCallerDep,
    group_id: Annotated[str | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page.")] = None,
) -> JSONResponse:
    """Paginated with `next_cursor`."""
    name = required_text({"group_id": group_id}, "group_id")
    cid = group_id_of(store, caller.company_id, name)
    page = col.list_subjects(store, caller.company_id, cid, limit, cursor)
    users = [{"uid": s["name"], "face_num": s["faces"]} for s in page["subjects"]]
    return reply(
        request_id,
        {"data": {"group_id": name, "users": users, "next_cursor": page["next_cursor"]}},
    )


@router.post("/api/face/user/delete", summary="Delete a user and its faces")
async def delete_user(
    request: Request, store: StoreDep, request_id: RequestIdDep, caller: AilabWriterDep
) -> JSONResponse:
    """Its faces, vectors and crops are deleted for real."""
    body = await parse_body(request, ())
    group_id = required_text(body.values, "group_id")
    uid = required_text(body.values, "uid")

    def work() -> None:
        cid, sid = user_id_of(store, caller.company_id, group_id, uid)
        col.delete_subject(store, caller.company_id, cid, sid)

    await run_in_threadpool(work)
    return reply(request_id, {"data": {"group_id": group_id, "uid": uid}})


@router.post("/api/face/face/add", summary="Enroll the face of an image into a user")
async def add_face(
    request: Request,
    store: StoreDep,
    request_id: RequestIdDep,
    caller: AilabWriterDep,
) -> JSONResponse:
    """`group_id`, `uid`, `image`; `face`: largest (default), all or an index. Answers with
    `face_token`; a face that fails the quality gate is refused with the reason's code."""
    body = await parse_body(request, ("image",))
    group_id = required_text(body.values, "group_id")
    uid = required_text(body.values, "uid")
    cid, sid = await run_in_threadpool(user_id_of, store, caller.company_id, group_id, uid)
    options = {"collection_id": cid, "subject_id": sid}
    if "face" in body.values:
        options["face"] = str(body.values["face"])
    out = await run_billed(
        get_runtime(request), caller, "enroll", {"image": body.image("image")}, options
    )
    faces = [{k: f[k] for k in ("face_token", "box", "quality")} for f in out["faces"]]
    data = {
        "group_id": group_id,
        "uid": uid,
        "face_token": out["face_token"],
        "faces": faces,
        "unindexed": out["unindexed"],
    }
    return reply(request_id, {"data": data})


@router.post("/api/face/face/delete", summary="Delete one face by its token")
async def delete_face(
    request: Request, store: StoreDep, request_id: RequestIdDep, caller: AilabWriterDep
) -> JSONResponse:
    """`group_id` and `face_token`; an unknown token is ERROR_FACE_TOKEN_NOT_FOUND."""
    body = await parse_body(request, ())
    group_id = required_text(body.values, "group_id")
    token = required_text(body.values, "face_token")

    def work() -> None:
        cid = group_id_of(store, caller.company_id, group_id)
        col.delete_face(store, caller.company_id, cid, token)

    await run_in_threadpool(work)
    return reply(request_id, {"data": {"group_id": group_id, "face_token": token}})


@router.post("/api/face/search", summary="1:N search of a group with an image or a face token")
async def search(
    request: Request,
    store: StoreDep,
    request_id: RequestIdDep,
    caller: AilabCallerDep,
) -> JSONResponse:
    """`group_id` and `image` (or `face_token`); `max_user_num` (1-100, default 5), `far`,
    `all_faces`. `user_list` is empty when nobody passes the threshold."""
    body = await parse_body(request, ("image",))
    group_id = required_text(body.values, "group_id")
    cid = await run_in_threadpool(group_id_of, store, caller.company_id, group_id)
    options: dict[str, Any] = {
        k: body.values[k] for k in ("far", "all_faces", "face_token") if k in body.values
    }
    options["collection_id"] = cid
    if "max_user_num" in body.values:
        options["k"] = body.values["max_user_num"]
    images = {}
    if "image" in body.images or "face_token" not in options:
        # Without either, the image is what is missing: MISSING_PARAMETERS names it.
        images["image"] = body.image("image")
    out = await run_billed(get_runtime(request), caller, "search", images, options)
    faces = [
        {
            "box": face["box"],
            "threshold": face["threshold"],
            "user_list": [
                {"uid": m["subject_name"], "face_token": m["face_token"], "score": m["similarity"]}
                for m in face["matches"]
            ],
        }
        for face in out["faces"]
    ]
    return reply(request_id, {"data": {"group_id": group_id, "far": out["far"], "faces": faces}})
