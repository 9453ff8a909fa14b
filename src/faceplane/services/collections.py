"""Face collections: CRUD of collections, subjects and faces; enroll with a quality gate."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import numpy as np
from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from faceplane.engine.embed import can_project, project
from faceplane.engine.models.registry import SPACES, get_space
from faceplane.errors import Err, FaceplaneError
from faceplane.runtime import Runtime
from faceplane.services.cursors import decode_cursor, encode_cursor
from faceplane.store.db import collections, face_removals, faces, subjects, write_tx
from faceplane.timestamps import iso_utc

KINDS = ("gallery", "blacklist")


def new_id() -> str:
    """A fresh resource id."""
    return uuid.uuid4().hex


def current_space(rt: Runtime) -> tuple[str, str]:
    """(embedder name, embedding space) of the embedder set in force."""
    return rt.pool.embedder_name(), rt.pool.embedding_space()


def check_space(rt: Runtime, collection: dict[str, Any]) -> None:
    """Refuse a collection whose space this server cannot produce.

    The server produces its own space and every space made of some of its parts: a fused
    server (dlib_resnet_v1+mobilefacenet_v1) searches and fills collections of
    dlib_resnet_v1 with its vectors' dlib part. A collection of a known space whose models
    are not installed here answers MODEL_UNAVAILABLE (naming the model to install); any other
    space (unknown, or left out by FACEPLANE_EMBEDDER) answers EMBEDDING_MODEL_MISMATCH.
    """
    _, space = current_space(rt)
    target = collection["model"]
    if target == space or (target in SPACES and can_project(space, target)):
        return
    if target in SPACES:
        spec = get_space(target)
        for part in spec.parts:
            models = spec.models(part)
            if not any(rt.pool.present(m) for m in models):
                raise FaceplaneError(
                    Err.MODEL_UNAVAILABLE,
                    f"The collection holds {target} embeddings, which need model {models[0]}; "
                    "it is not installed here (run `faceplane models install`).",
                    model=models[0],
                    collection_id=collection["id"],
                    collection_model=target,
                )
    raise FaceplaneError(
        Err.EMBEDDING_MODEL_MISMATCH,
        f"The collection holds {target} embeddings; this server makes {space}.",
        collection_id=collection["id"],
        collection_model=target,
        model=space,
    )


def to_collection_space(rt: Runtime, vector: np.ndarray, collection: dict[str, Any]) -> np.ndarray:
    """A vector of the server's space re-expressed in the collection's (after check_space)."""
    return project(vector, rt.pool.embedding_space(), collection["model"])


def _page(rows: list[dict[str, Any]], limit: int, key: str = "id") -> str | None:
    return encode_cursor(rows[limit - 1][key]) if len(rows) > limit else None


# ---- collections ---------------------------------------------------------------------------


def _collection_json(row: dict[str, Any], conn: Connection) -> dict[str, Any]:
    counts = conn.execute(
        select(func.count(func.distinct(subjects.c.id)), func.count(func.distinct(faces.c.seq)))
        .select_from(subjects.outerjoin(faces, faces.c.subject_id == subjects.c.id))
        .where(subjects.c.collection_id == row["id"])
    ).one()
    return {
        "id": row["id"],
        "name": row["name"],
        "kind": row["kind"],
        "model": row["model"],
        "description": row["description"],
        "subjects": counts[0],
        "faces": counts[1],
        "created_at": iso_utc(row["created_at"]),
        "updated_at": iso_utc(row["updated_at"]),
    }


def _one(conn: Connection, query: Any, err: Err, message: str, **details: Any) -> dict[str, Any]:
    """The one row of `query`, or the not-found error `err` (the same for another company's)."""
    row = conn.execute(query).mappings().first()
    if row is None:
        raise FaceplaneError(err, message, **details)
    return dict(row)


def load_collection(conn: Connection, company_id: str, collection_id: str) -> dict[str, Any]:
    """The collection row, or COLLECTION_NOT_FOUND (also for another company's)."""
    query = select(collections).where(
        and_(collections.c.id == collection_id, collections.c.company_id == company_id)
    )
    return _one(
        conn,
        query,
        Err.COLLECTION_NOT_FOUND,
        "There is no collection with this id.",
        id=collection_id,
    )


def create_collection(
    rt: Runtime, company_id: str, name: str, kind: str, description: str = ""
) -> dict[str, Any]:
    """Create a gallery or blacklist, pinned to the embedding space in force."""
    store = rt.store
    if kind not in KINDS:
        raise FaceplaneError(Err.INVALID_ARGUMENT, "`kind` is gallery or blacklist.", kind=kind)
    if not name.strip():
        raise FaceplaneError(Err.MISSING_ARGUMENT, "`name` is required.", field="name")
    _, space = current_space(rt)
    now = time.time()
    row = {
        "id": new_id(),
        "company_id": company_id,
        "name": name,
        "kind": kind,
        "model": space,
        "description": description,
        "created_at": now,
        "updated_at": now,
    }
    try:
        with write_tx(store.db) as conn:
            count = conn.execute(
                select(func.count())
                .select_from(collections)
                .where(collections.c.company_id == company_id)
            ).scalar_one()
            if count >= rt.settings.max_collections:
                raise FaceplaneError(
                    Err.COLLECTION_LIMIT_EXCEEDED,
                    f"A company may have at most {rt.settings.max_collections} collections.",
                    limit=rt.settings.max_collections,
                )
            conn.execute(insert(collections).values(**row))
            return _collection_json(row, conn)
    except IntegrityError:
        raise FaceplaneError(
            Err.COLLECTION_EXISTS, f"A collection named {name!r} already exists.", name=name
        ) from None


def get_collection(rt: Runtime, company_id: str, collection_id: str) -> dict[str, Any]:
    """One collection with its counts."""
    store = rt.store
    with store.db.connect() as conn:
        return _collection_json(load_collection(conn, company_id, collection_id), conn)


def list_collections(
    rt: Runtime, company_id: str, limit: int, cursor: str | None, kind: str | None = None
) -> dict[str, Any]:
    """The company's collections by id, `limit` per page."""
    store = rt.store
    query = select(collections).where(collections.c.company_id == company_id)
    if kind:
        query = query.where(collections.c.kind == kind)
    if cursor:
        query = query.where(collections.c.id > decode_cursor(cursor, str)[0])
    with store.db.connect() as conn:
        rows = [
            dict(r)
            for r in conn.execute(query.order_by(collections.c.id).limit(limit + 1)).mappings()
        ]
        items = [_collection_json(r, conn) for r in rows[:limit]]
    return {"collections": items, "next_cursor": _page(rows, limit)}


def update_collection(
    rt: Runtime, company_id: str, collection_id: str, name: str | None, description: str | None
) -> dict[str, Any]:
    """Rename a collection or change its description."""
    store = rt.store
    values: dict[str, Any] = {"updated_at": time.time()}
    if name is not None:
        if not name.strip():
            raise FaceplaneError(Err.INVALID_ARGUMENT, "`name` cannot be empty.", field="name")
        values["name"] = name
    if description is not None:
        values["description"] = description
    try:
        with write_tx(store.db) as conn:
            load_collection(conn, company_id, collection_id)
            conn.execute(
                update(collections).where(collections.c.id == collection_id).values(**values)
            )
            return _collection_json(load_collection(conn, company_id, collection_id), conn)
    except IntegrityError:
        raise FaceplaneError(
            Err.COLLECTION_EXISTS, f"A collection named {name!r} already exists.", name=name
        ) from None


def delete_collection(rt: Runtime, company_id: str, collection_id: str) -> None:
    """Delete a collection with its subjects, faces, vectors and crops, for real."""
    store = rt.store
    with write_tx(store.db) as conn:
        load_collection(conn, company_id, collection_id)
        conn.execute(delete(faces).where(faces.c.collection_id == collection_id))
        conn.execute(delete(subjects).where(subjects.c.collection_id == collection_id))
        conn.execute(delete(face_removals).where(face_removals.c.collection_id == collection_id))
        conn.execute(delete(collections).where(collections.c.id == collection_id))
    store.indexes.drop(collection_id)
    store.blobs.delete_prefix(f"collections/{collection_id}")


# ---- subjects ------------------------------------------------------------------------------


def _subject_json(row: dict[str, Any], conn: Connection) -> dict[str, Any]:
    count = conn.execute(
        select(func.count()).select_from(faces).where(faces.c.subject_id == row["id"])
    ).scalar_one()
    return {
        "id": row["id"],
        "collection_id": row["collection_id"],
        "name": row["name"],
        "external_id": row["external_id"],
        "metadata": json.loads(row["metadata_json"] or "{}"),
        "faces": count,
        "created_at": iso_utc(row["created_at"]),
        "updated_at": iso_utc(row["updated_at"]),
    }


def load_subject(
    conn: Connection, company_id: str, collection_id: str, subject_id: str
) -> dict[str, Any]:
    """The subject row, or SUBJECT_NOT_FOUND."""
    load_collection(conn, company_id, collection_id)
    query = select(subjects).where(
        and_(subjects.c.id == subject_id, subjects.c.collection_id == collection_id)
    )
    return _one(
        conn, query, Err.SUBJECT_NOT_FOUND, "There is no subject with this id here.", id=subject_id
    )


def create_subject(
    rt: Runtime,
    company_id: str,
    collection_id: str,
    name: str,
    external_id: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Add a person to a collection; names are unique within it."""
    store = rt.store
    if not name.strip():
        raise FaceplaneError(Err.MISSING_ARGUMENT, "`name` is required.", field="name")
    now = time.time()
    row = {
        "id": new_id(),
        "collection_id": collection_id,
        "name": name,
        "external_id": external_id,
        "metadata_json": json.dumps(metadata or {}),
        "created_at": now,
        "updated_at": now,
    }
    try:
        with write_tx(store.db) as conn:
            load_collection(conn, company_id, collection_id)
            count = conn.execute(
                select(func.count())
                .select_from(subjects)
                .where(subjects.c.collection_id == collection_id)
            ).scalar_one()
            limit = rt.settings.collection_max_subjects
            if count >= limit:
                raise FaceplaneError(
                    Err.SUBJECT_LIMIT_EXCEEDED,
                    f"A collection holds at most {limit} subjects.",
                    limit=limit,
                )
            conn.execute(insert(subjects).values(**row))
            return _subject_json(row, conn)
    except IntegrityError:
        raise FaceplaneError(
            Err.SUBJECT_EXISTS, f"A subject named {name!r} already exists here.", name=name
        ) from None


def get_subject(
    rt: Runtime, company_id: str, collection_id: str, subject_id: str
) -> dict[str, Any]:
    """One subject with its face count."""
    store = rt.store
    with store.db.connect() as conn:
        return _subject_json(load_subject(conn, company_id, collection_id, subject_id), conn)


def list_subjects(
    rt: Runtime, company_id: str, collection_id: str, limit: int, cursor: str | None
) -> dict[str, Any]:
    """A collection's subjects by id, `limit` per page."""
    store = rt.store
    query = select(subjects).where(subjects.c.collection_id == collection_id)
    if cursor:
        query = query.where(subjects.c.id > decode_cursor(cursor, str)[0])
    with store.db.connect() as conn:
        load_collection(conn, company_id, collection_id)
        rows = [
            dict(r) for r in conn.execute(query.order_by(subjects.c.id).limit(limit + 1)).mappings()
        ]
        items = [_subject_json(r, conn) for r in rows[:limit]]
    return {"subjects": items, "next_cursor": _page(rows, limit)}


def update_subject(
    rt: Runtime, company_id: str, collection_id: str, subject_id: str, changes: dict[str, Any]
) -> dict[str, Any]:
    """Rename a subject or change its external id or metadata."""
    store = rt.store
    values: dict[str, Any] = {"updated_at": time.time()}
    if changes.get("name") is not None:
        if not str(changes["name"]).strip():
            raise FaceplaneError(Err.INVALID_ARGUMENT, "`name` cannot be empty.", field="name")
        values["name"] = changes["name"]
    if "external_id" in changes:
        values["external_id"] = changes["external_id"]
    if changes.get("metadata") is not None:
        values["metadata_json"] = json.dumps(changes["metadata"])
    try:
        with write_tx(store.db) as conn:
            load_subject(conn, company_id, collection_id, subject_id)
            conn.execute(update(subjects).where(subjects.c.id == subject_id).values(**values))
            return _subject_json(load_subject(conn, company_id, collection_id, subject_id), conn)
    except IntegrityError:
        raise FaceplaneError(
            Err.SUBJECT_EXISTS,
            "A subject with this name already exists here.",
            name=changes.get("name"),
        ) from None


def _remove_faces(conn: Connection, collection_id: str, where: Any) -> list[str]:
    """Delete face rows, log their removal for other processes' indexes; return crop keys."""
    rows = conn.execute(select(faces.c.seq, faces.c.crop_key).where(where)).all()
    if rows:
        now = time.time()
        conn.execute(
            insert(face_removals),
            [{"collection_id": collection_id, "face_seq": r[0], "at": now} for r in rows],
        )
        conn.execute(delete(faces).where(where))
    return [r[1] for r in rows if r[1]]


def delete_subject(rt: Runtime, company_id: str, collection_id: str, subject_id: str) -> None:
    """Delete a subject with its faces, vectors and crops."""
    store = rt.store
    with write_tx(store.db) as conn:
        load_subject(conn, company_id, collection_id, subject_id)
        crops = _remove_faces(conn, collection_id, faces.c.subject_id == subject_id)
        conn.execute(delete(subjects).where(subjects.c.id == subject_id))
    for key in crops:
        store.blobs.delete_prefix(key)
    store.indexes.get(store.db, collection_id)  # drop the vectors from this process now


# ---- faces ---------------------------------------------------------------------------------


def _face_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "face_token": row["token"],
        "subject_id": row["subject_id"],
        "collection_id": row["collection_id"],
        "model": row["model"],
        "box": json.loads(row["box_json"]),
        "quality": json.loads(row["quality_json"]),
        "has_crop": bool(row["crop_key"]),
        "created_at": iso_utc(row["created_at"]),
    }


def load_face(conn: Connection, company_id: str, collection_id: str, token: str) -> dict[str, Any]:
    """The face row, or FACE_TOKEN_NOT_FOUND."""
    load_collection(conn, company_id, collection_id)
    query = select(faces).where(
        and_(faces.c.token == token, faces.c.collection_id == collection_id)
    )
    return _one(
        conn, query, Err.FACE_TOKEN_NOT_FOUND, "There is no face with this token.", face_token=token
    )


def list_faces(
    rt: Runtime,
    company_id: str,
    collection_id: str,
    subject_id: str,
    limit: int,
    cursor: str | None,
) -> dict[str, Any]:
    """A subject's faces, `limit` per page."""
    store = rt.store
    query = select(faces).where(faces.c.subject_id == subject_id)
    if cursor:
        query = query.where(faces.c.token > decode_cursor(cursor, str)[0])
    with store.db.connect() as conn:
        load_subject(conn, company_id, collection_id, subject_id)
        rows = [
            dict(r) for r in conn.execute(query.order_by(faces.c.token).limit(limit + 1)).mappings()
        ]
    return {
        "faces": [_face_json(r) for r in rows[:limit]],
        "next_cursor": _page(rows, limit, "token"),
    }


def get_face(rt: Runtime, company_id: str, collection_id: str, token: str) -> dict[str, Any]:
    """One enrolled face (never its embedding)."""
    store = rt.store
    with store.db.connect() as conn:
        return _face_json(load_face(conn, company_id, collection_id, token))


def delete_face(rt: Runtime, company_id: str, collection_id: str, token: str) -> None:
    """Delete one face, its vector and its crop."""
    store = rt.store
    with write_tx(store.db) as conn:
        load_face(conn, company_id, collection_id, token)
        crops = _remove_faces(conn, collection_id, faces.c.token == token)
    for key in crops:
        store.blobs.delete_prefix(key)
    store.indexes.get(store.db, collection_id)


def move_face(
    rt: Runtime, company_id: str, collection_id: str, token: str, subject_id: str
) -> dict[str, Any]:
    """Give a face to another subject of the same collection."""
    store = rt.store
    with write_tx(store.db) as conn:
        row = load_face(conn, company_id, collection_id, token)
        load_subject(conn, company_id, collection_id, subject_id)
        if row["subject_id"] != subject_id:  # a face moved to its own subject adds no face
            check_subject_room(rt, conn, subject_id)
        conn.execute(update(faces).where(faces.c.token == token).values(subject_id=subject_id))
        return _face_json(load_face(conn, company_id, collection_id, token))


def check_collection_room(
    rt: Runtime, conn: Connection, collection_id: str, incoming: int = 1
) -> None:
    """Refuse `incoming` more faces for a collection they would take past its limit."""
    limit = rt.settings.collection_max_faces
    existing = conn.execute(
        select(func.count()).select_from(faces).where(faces.c.collection_id == collection_id)
    ).scalar_one()
    if existing + incoming > limit:
        raise FaceplaneError(
            Err.FACE_LIMIT_EXCEEDED,
            f"A collection holds at most {limit} faces; it has {existing}, {incoming} more asked.",
            scope="collection",
            limit=limit,
            existing=existing,
            incoming=incoming,
        )


def check_subject_room(rt: Runtime, conn: Connection, subject_id: str, incoming: int = 1) -> None:
    """Refuse `incoming` more faces for a subject they would take past its limit."""
    limit = rt.settings.subject_max_faces
    existing = conn.execute(
        select(func.count()).select_from(faces).where(faces.c.subject_id == subject_id)
    ).scalar_one()
    if existing + incoming > limit:
        raise FaceplaneError(
            Err.FACE_LIMIT_EXCEEDED,
            f"A subject holds at most {limit} faces; it has {existing}, {incoming} more asked.",
            scope="subject",
            limit=limit,
            existing=existing,
            incoming=incoming,
        )


# ---- lookups by name (vendor dialects whose clients name their own groups and users) -------


def find_collection_by_name(rt: Runtime, company_id: str, name: str) -> dict[str, Any]:
    """The company's collection called `name` (its row), or COLLECTION_NOT_FOUND."""
    query = select(collections).where(
        and_(collections.c.company_id == company_id, collections.c.name == name)
    )
    with rt.store.db.connect() as conn:
        return _one(
            conn,
            query,
            Err.COLLECTION_NOT_FOUND,
            f"There is no collection named {name!r}.",
            name=name,
        )


def find_subject_by_name(
    rt: Runtime, company_id: str, collection_name: str, name: str
) -> dict[str, Any]:
    """The subject called `name` (its row) in the company's collection `collection_name`, or
    COLLECTION_NOT_FOUND / SUBJECT_NOT_FOUND for whichever is missing."""
    collection = find_collection_by_name(rt, company_id, collection_name)
    query = select(subjects).where(
        and_(subjects.c.collection_id == collection["id"], subjects.c.name == name)
    )
    with rt.store.db.connect() as conn:
        return _one(
            conn,
            query,
            Err.SUBJECT_NOT_FOUND,
            f"There is no subject named {name!r} in collection {collection_name!r}.",
            name=name,
            collection_name=collection_name,
        )


def find_collection_id(rt: Runtime, company_id: str, name_or_id: str) -> str | None:
    """The id of the company's collection whose id or name is `name_or_id`, if there is one
    (the CLI takes either)."""
    query = select(collections.c.id).where(
        and_(
            collections.c.company_id == company_id,
            or_(collections.c.id == name_or_id, collections.c.name == name_or_id),
        )
    )
    with rt.store.db.connect() as conn:
        row = conn.execute(query).first()
    return str(row[0]) if row else None


# ---- operator maintenance (every company's collections) ------------------------------------


def rebuild_indexes(rt: Runtime, name_or_id: str | None) -> list[tuple[str, int]]:
    """Rebuild the vector indexes of every collection (of every company: the operator's
    `faceplane index rebuild`), or of those whose id or name is `name_or_id`, from the
    database; (collection id, vectors) for each."""
    query = select(collections.c.id)
    if name_or_id:
        query = query.where(or_(collections.c.id == name_or_id, collections.c.name == name_or_id))
    store = rt.store
    with store.db.connect() as conn:
        ids = [str(r[0]) for r in conn.execute(query.order_by(collections.c.id)).all()]
    return [(cid, store.indexes.rebuild(store.db, cid)) for cid in ids]
