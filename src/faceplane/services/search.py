"""1:N search in a collection, and the blacklist check across all blacklists of a caller."""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import and_, select

from faceplane.engine.embed import normalise
from faceplane.engine.faces import analyse_image
from faceplane.errors import Err, FaceplaneError
from faceplane.runtime import Runtime
from faceplane.services.collections import check_space, load_collection, load_face
from faceplane.services.faces import far_value
from faceplane.services.images import ImageSource, load_image
from faceplane.store.db import collections, faces, subjects

EMBEDDING_DIM = 128


def far_threshold(rt: Runtime, far: float) -> tuple[float, float]:
    """(similarity threshold, its FAR) for a requested false-accept rate, on the calibrated
    scale compare speaks too (FAR 1e-4 → 0.7); INVALID_ARGUMENT below the table's reach."""
    return rt.far_threshold(far), far


def _probes(
    rt: Runtime,
    company_id: str,
    collection_id: str,
    image: ImageSource | None,
    embedding: list[float] | None,
    face_token: str | None,
    all_faces: bool,
) -> list[tuple[dict[str, Any] | None, np.ndarray]]:
    """(box or None, normalised vector) for each probe face."""
    store = rt.store
    given = sum(x is not None for x in (image, embedding, face_token))
    if given != 1:
        raise FaceplaneError(
            Err.INVALID_ARGUMENT, "Give exactly one of `image`, `embedding` or `face_token`."
        )
    if embedding is not None:
        vec = np.asarray(embedding, dtype=np.float32)
        if vec.shape != (EMBEDDING_DIM,) or not np.all(np.isfinite(vec)) or not vec.any():
            raise FaceplaneError(
                Err.EMBEDDING_INVALID, f"`embedding` must be {EMBEDDING_DIM} finite numbers."
            )
        return [(None, normalise(vec[None])[0])]
    if face_token is not None:
        with store.db.connect() as conn:
            row = load_face(conn, company_id, collection_id, face_token)
        return [(None, np.frombuffer(row["embedding"], dtype="<f4").copy())]
    assert image is not None
    decoded = load_image(rt, image)
    analysis = analyse_image(rt.pool, decoded.rgb, rt.analyse_options(embeddings=True))
    if not analysis.faces:
        raise FaceplaneError(
            Err.FACE_NOT_FOUND, "No face was found in the image.", field=image.field
        )
    chosen = analysis.faces if all_faces else analysis.faces[:1]
    out = []
    for f in chosen:
        assert f.embedding is not None
        out.append((f.as_dict()["box"], f.embedding))
    return out


def _matches(
    rt: Runtime,
    collection_id: str,
    vec: np.ndarray,
    k: int,
    threshold: float,
) -> list[dict[str, Any]]:
    """The top-k subjects (best face each) above the threshold, best first."""
    store = rt.store
    index = store.indexes.get(store.db, collection_id)
    if len(index) == 0:
        return []
    # Several faces may belong to one subject: look a little deeper than k subjects.
    keys, cos = index.search(vec[None].astype(np.float32), min(len(index), k * 4))
    cal = rt.calibration()
    scores = cos[0].astype(np.float64)
    sims, fars = cal.similarity(scores), cal.far(scores)
    hits = [
        (int(key), float(s), float(f))
        for key, s, f in zip(keys[0], sims, fars, strict=True)
        if key >= 0 and s >= threshold
    ]
    if not hits:
        return []
    with store.db.connect() as conn:
        rows = conn.execute(
            select(
                faces.c.seq, faces.c.token, subjects.c.id, subjects.c.name, subjects.c.external_id
            )
            .join(subjects, subjects.c.id == faces.c.subject_id)
            .where(faces.c.seq.in_([h[0] for h in hits]))
        ).all()
    by_seq = {r[0]: r for r in rows}
    best: dict[str, dict[str, Any]] = {}
    for seq, sim, far in hits:
        row = by_seq.get(seq)
        if row is None or row[2] in best:  # deleted meanwhile, or a weaker face of a subject
            continue
        best[row[2]] = {
            "subject_id": row[2],
            "subject_name": row[3],
            "external_id": row[4],
            "face_token": row[1],
            "similarity": round(sim, 6),
            "far": far_value(far),
        }
    return sorted(best.values(), key=lambda m: -m["similarity"])[:k]


def search_collection(
    rt: Runtime,
    company_id: str,
    collection_id: str,
    image: ImageSource | None = None,
    embedding: list[float] | None = None,
    face_token: str | None = None,
    all_faces: bool = False,
    k: int = 5,
    far: float | None = None,
) -> dict[str, Any]:
    """For each probe face, the top-k subjects whose similarity passes the FAR threshold;
    `matches` is empty — a real "unknown" — when nobody does."""
    store = rt.store
    with store.db.connect() as conn:
        coll = load_collection(conn, company_id, collection_id)
    check_space(rt, coll)
    threshold, threshold_far = far_threshold(rt, far or rt.settings.search_default_far)
    probes = _probes(rt, company_id, collection_id, image, embedding, face_token, all_faces)
    return {
        "collection_id": collection_id,
        "far": threshold_far,
        "faces": [
            {
                "box": box,
                "threshold": round(threshold, 6),
                "matches": _matches(rt, collection_id, vec, k, threshold),
            }
            for box, vec in probes
        ],
    }


def check_blacklists(
    rt: Runtime,
    company_id: str,
    image: ImageSource | None,
    embedding: list[float] | None = None,
    far: float | None = None,
    k: int = 5,
) -> dict[str, Any]:
    """Search every face of the probe in every blacklist of the company: hit or no hit."""
    store = rt.store
    with store.db.connect() as conn:
        rows = conn.execute(
            select(collections).where(
                and_(collections.c.company_id == company_id, collections.c.kind == "blacklist")
            )
        ).mappings()
        lists = [dict(r) for r in rows]
    # A blacklist that cannot be searched must not pass for one without a hit.
    for row in lists:
        check_space(rt, row)
    ids = [(row["id"], row["name"]) for row in lists]
    threshold, threshold_far = far_threshold(rt, far or rt.settings.search_default_far)
    probes = _probes(rt, company_id, "", image, embedding, None, True)
    entries = []
    for box, vec in probes:
        for cid, cname in ids:
            for m in _matches(rt, cid, vec, k, threshold):
                entries.append({**m, "collection_id": cid, "collection_name": cname, "box": box})
    entries.sort(key=lambda m: -m["similarity"])
    return {
        "hit": bool(entries),
        "matches": entries,
        "threshold": round(threshold, 6),
        "far": threshold_far,
        "blacklists": len(ids),
    }
