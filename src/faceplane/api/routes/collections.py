"""Collections, subjects and faces (CRUD), enroll, 1:N search and the blacklist check."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from faceplane.api.auth import CallerDep, WriterDep
from faceplane.api.deps import RequestIdDep, RuntimeDep
from faceplane.api.inputs import image_body_schema
from faceplane.api.render import render_result
from faceplane.api.routes.faces import run_sync
from faceplane.services import collections as col
from faceplane.services.params import BlacklistParams, EnrollParams, SearchParams

router = APIRouter(prefix="/v1", tags=["collections"])

Limit = Annotated[int, Query(ge=1, le=1000)]
Cursor = Annotated[str | None, Query(description="`next_cursor` of the previous page.")]


class CollectionIn(BaseModel):
    """A new collection."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    kind: str = Field("gallery", pattern="^(gallery|blacklist)$")
    description: str = Field("", max_length=2000)


class CollectionPatch(BaseModel):
    """A rename or a new description."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=2000)


class SubjectIn(BaseModel):
    """A new subject (a person)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    external_id: str | None = Field(None, max_length=200)
    metadata: dict[str, Any] = Field(default_factory=dict)


class SubjectPatch(BaseModel):
    """Changes to a subject."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, min_length=1, max_length=200)
    external_id: str | None = Field(None, max_length=200)
    metadata: dict[str, Any] | None = None


class FacePatch(BaseModel):
    """Move a face to another subject."""

    model_config = ConfigDict(extra="forbid")
    subject_id: str


@router.post("/collections", status_code=201, summary="Create a gallery or a blacklist")
async def create_collection(
    body: CollectionIn,
    rt: RuntimeDep,
    request_id: RequestIdDep,
    caller: WriterDep,
) -> dict[str, Any]:
    """Answers with the collection's `id`; its embedding model is pinned now."""
    out = await rt.run_io(
        col.create_collection, rt, caller.company_id, body.name, body.kind, body.description
    )
    return render_result(request_id, out)


@router.get("/collections", summary="The caller's collections")
async def list_collections(
    rt: RuntimeDep,
    request_id: RequestIdDep,
    caller: CallerDep,
    limit: Limit = 50,
    cursor: Cursor = None,
    kind: Annotated[str | None, Query(pattern="^(gallery|blacklist)$")] = None,
) -> dict[str, Any]:
    """Paginated with `next_cursor`."""
    return render_result(
        request_id,
        await rt.run_io(col.list_collections, rt, caller.company_id, limit, cursor, kind),
    )


@router.get("/collections/{collection_id}", summary="One collection")
async def get_collection(
    collection_id: str, rt: RuntimeDep, request_id: RequestIdDep, caller: CallerDep
) -> dict[str, Any]:
    """With its subject and face counts."""
    return render_result(
        request_id, await rt.run_io(col.get_collection, rt, caller.company_id, collection_id)
    )


@router.patch("/collections/{collection_id}", summary="Rename a collection")
async def patch_collection(
    collection_id: str,
    body: CollectionPatch,
    rt: RuntimeDep,
    request_id: RequestIdDep,
    caller: WriterDep,
) -> dict[str, Any]:
    """Change the name or the description."""
    out = await rt.run_io(
        col.update_collection,
        rt,
        caller.company_id,
        collection_id,
        body.name,
        body.description,
    )
    return render_result(request_id, out)


@router.delete(
    "/collections/{collection_id}",
    status_code=204,
    summary="Delete a collection with everything in it",
)
async def delete_collection(collection_id: str, rt: RuntimeDep, caller: WriterDep) -> Response:
    """Subjects, faces, vectors and crops are deleted for real."""
    await rt.run_io(col.delete_collection, rt, caller.company_id, collection_id)
    return Response(status_code=204)


@router.post("/collections/{collection_id}/subjects", status_code=201, summary="Add a subject")
async def create_subject(
    collection_id: str,
    body: SubjectIn,
    rt: RuntimeDep,
    request_id: RequestIdDep,
    caller: WriterDep,
) -> dict[str, Any]:
    """Answers with the subject's `id`; names are unique within a collection."""
    out = await rt.run_io(
        col.create_subject,
        rt,
        caller.company_id,
        collection_id,
        body.name,
        body.external_id,
        body.metadata,
    )
    return render_result(request_id, out)


@router.get("/collections/{collection_id}/subjects", summary="A collection's subjects")
async def list_subjects(
    collection_id: str,
    rt: RuntimeDep,
    caller: CallerDep,
    request_id: RequestIdDep,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """Paginated with `next_cursor`."""
    return render_result(
        request_id,
        await rt.run_io(col.list_subjects, rt, caller.company_id, collection_id, limit, cursor),
    )


@router.get("/collections/{collection_id}/subjects/{subject_id}", summary="One subject")
async def get_subject(
    collection_id: str,
    subject_id: str,
    rt: RuntimeDep,
    request_id: RequestIdDep,
    caller: CallerDep,
) -> dict[str, Any]:
    """With its face count."""
    return render_result(
        request_id,
        await rt.run_io(col.get_subject, rt, caller.company_id, collection_id, subject_id),
    )


@router.patch("/collections/{collection_id}/subjects/{subject_id}", summary="Change a subject")
async def patch_subject(
    collection_id: str,
    subject_id: str,
    body: SubjectPatch,
    rt: RuntimeDep,
    request_id: RequestIdDep,
    caller: WriterDep,
) -> dict[str, Any]:
    """Rename, or change the external id or metadata."""
    changes = body.model_dump(exclude_unset=True)
    out = await rt.run_io(
        col.update_subject, rt, caller.company_id, collection_id, subject_id, changes
    )
    return render_result(request_id, out)


@router.delete(
    "/collections/{collection_id}/subjects/{subject_id}",
    status_code=204,
    summary="Delete a subject and its faces",
)
async def delete_subject(
    collection_id: str, subject_id: str, rt: RuntimeDep, caller: WriterDep
) -> Response:
    """Its faces, vectors and crops are deleted for real."""
    await rt.run_io(col.delete_subject, rt, caller.company_id, collection_id, subject_id)
    return Response(status_code=204)


@router.post(
    "/collections/{collection_id}/subjects/{subject_id}/faces",
    status_code=201,
    summary="Enroll faces of an image into a subject",
    openapi_extra=image_body_schema(("image",), EnrollParams),
)
async def enroll(
    collection_id: str,
    subject_id: str,
    request: Request,
    request_id: RequestIdDep,
    caller: WriterDep,
) -> JSONResponse:
    """`face`: `largest` (default), `all` or an index. Answers with `face_token`; faces that
    fail the quality gate are refused with the reason's code (or listed in `unindexed`)."""
    out = await run_sync(
        "enroll",
        request,
        request_id,
        caller,
        collection_id=collection_id,
        subject_id=subject_id,
    )
    return JSONResponse(out, status_code=201)


@router.get("/collections/{collection_id}/subjects/{subject_id}/faces", summary="A subject's faces")
async def list_faces(
    collection_id: str,
    subject_id: str,
    rt: RuntimeDep,
    caller: CallerDep,
    request_id: RequestIdDep,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """Tokens, boxes and quality (never embeddings)."""
    out = await rt.run_io(
        col.list_faces, rt, caller.company_id, collection_id, subject_id, limit, cursor
    )
    return render_result(request_id, out)


@router.get("/collections/{collection_id}/faces/{face_token}", summary="One face")
async def get_face(
    collection_id: str,
    face_token: str,
    rt: RuntimeDep,
    request_id: RequestIdDep,
    caller: CallerDep,
) -> dict[str, Any]:
    """Its subject, box and quality."""
    return render_result(
        request_id,
        await rt.run_io(col.get_face, rt, caller.company_id, collection_id, face_token),
    )


@router.patch(
    "/collections/{collection_id}/faces/{face_token}", summary="Move a face to another subject"
)
async def move_face(
    collection_id: str,
    face_token: str,
    body: FacePatch,
    rt: RuntimeDep,
    request_id: RequestIdDep,
    caller: WriterDep,
) -> dict[str, Any]:
    """The subject must be in the same collection."""
    out = await rt.run_io(
        col.move_face, rt, caller.company_id, collection_id, face_token, body.subject_id
    )
    return render_result(request_id, out)


@router.delete(
    "/collections/{collection_id}/faces/{face_token}", status_code=204, summary="Delete a face"
)
async def delete_face(
    collection_id: str, face_token: str, rt: RuntimeDep, caller: WriterDep
) -> Response:
    """Its vector and crop are deleted for real."""
    await rt.run_io(col.delete_face, rt, caller.company_id, collection_id, face_token)
    return Response(status_code=204)


@router.post(
    "/collections/{collection_id}/search",
    summary="1:N search with an image, an embedding or a face token",
    openapi_extra=image_body_schema(("image",), SearchParams),
)
async def search(
    collection_id: str,
    request: Request,
    request_id: RequestIdDep,
    caller: CallerDep,
) -> dict[str, Any]:
    """`far` and `faces: [{box, matches: [{subject_id, subject_name, similarity, far}],
    threshold}]`; `matches` is empty when nobody passes the threshold of `far` (the same
    similarity scale as compare: FAR 1e-4 → 0.7)."""
    return await run_sync("search", request, request_id, caller, collection_id=collection_id)


@router.post(
    "/blacklist/check",
    tags=["collections"],
    summary="Check every face of an image against all the caller's blacklists",
    openapi_extra=image_body_schema(("image",), BlacklistParams),
)
async def blacklist_check(
    request: Request,
    request_id: RequestIdDep,
    caller: CallerDep,
) -> dict[str, Any]:
    """`hit` true or false, with the matched entries."""
    return await run_sync("blacklist_check", request, request_id, caller)
