"""1:N search in a collection, and the blacklist check across all blacklists of a caller."""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import and_, select

from faceplane.engine.embed import can_project, normalise, project
from faceplane.engine.faces import analyse_image
from faceplane.engine.models.registry import SPACES, get_space
from faceplane.errors import Err, FaceplaneError
from faceplane.runtime import Runtime
from faceplane.services.collections import check_space, load_collection, load_face
from faceplane.services.faces import far_value
from faceplane.services.images import ImageSource, load_image
from faceplane.store.db import collections, faces, subjects


def vector_input(vec_in: list[float], target: str, field: str = "embedding") -> np.ndarray:
    """A caller's vector as a unit vector of space `target`, or EMBEDDING_INVALID.

    Accepted: a vector of `target`'s length (128 for dlib_resnet_v1, 320 for the fused space),
    or of a space that holds every part of `target` (a 320-d fused vector against a 128-d
    collection is projected onto its dlib part).
    """
    vec = np.asarray(vec_in, dtype=np.float32)
    spaces = [n for n, sp in SPACES.items() if n == target or can_project(n, target)]
    lengths = sorted({get_space(n).dim for n in spaces})
    source = next((n for n in spaces if vec.ndim == 1 and get_space(n).dim == len(vec)), None)
    if source is None or not np.all(np.isfinite(vec)) or not vec.any():
        sizes = " or ".join(str(n) for n in lengths)
        raise FaceplaneError(
            Err.EMBEDDING_INVALID,
            f"`{field}` must be {sizes} finite numbers, not all zero ({target}).",
            field=field,
            lengths=lengths,
            space=target,
        )
    return normalise(project(normalise(vec[None]), source, target))[0]


def far_threshold(rt: Runtime, far: float, space: str | None = None) -> tuple[float, float]:
    """(similarity threshold, its FAR) for a requested false-accept rate in `space` (default:
    the server's), on the calibrated scale compare speaks too (FAR 1e-4 → 0.7);
    INVALID_ARGUMENT below the table's reach."""
    return rt.far_threshold(far, space), far


def _probes(
    rt: Runtime,
    company_id: str,
    collection_id: str,
    image: ImageSource | None,
    embedding: list[float] | None,
    face_token: str | None,
    all_faces: bool,
    spaces: list[str],
) -> list[tuple[dict[str, Any] | None, dict[str, np.ndarray]]]:
    """(box or None, {space: normalised vector}) for each probe face, in each of `spaces`
    (the spaces of the collections searched, all checked by check_space)."""
    store = rt.store
    given = sum(x is not None for x in (image, embedding, face_token))
    if given != 1:
        raise FaceplaneError(
            Err.INVALID_ARGUMENT, "Give exactly one of `image`, `embedding` or `face_token`."
        )
    if embedding is not None:
        return [(None, {sp: vector_input(embedding, sp) for sp in spaces})]
    if face_token is not None:
        with store.db.connect() as conn:
            row = load_face(conn, company_id, collection_id, face_token)
        # A face of this collection: its vector is in the collection's space already.
        return [(None, {row["model"]: np.frombuffer(row["embedding"], dtype="<f4").copy()})]
    assert image is not None
    decoded = load_image(rt, image)
    analysis = analyse_image(rt.pool, decoded.rgb, rt.analyse_options(embeddings=True))
    if not analysis.faces:
        raise FaceplaneError(
            Err.FACE_NOT_FOUND, "No face was found in the image.", field=image.field
        )
    chosen = analysis.faces if all_faces else analysis.faces[:1]
    ours = analysis.models["space"]
    out = []
    for f in chosen:
        assert f.embedding is not None
        vecs = {sp: project(f.embedding[None], ours, sp)[0] for sp in spaces}
        out.append((f.as_dict()["box"], vecs))
    return out


def _matches(
    rt: Runtime,
    collection_id: str,
    vec: np.ndarray,
    k: int,
    threshold: float,
    space: str,
) -> list[dict[str, Any]]:
    """The top-k subjects (best face each) above the threshold, best first."""
    store = rt.store
    index = store.indexes.get(store.db, collection_id)
    if len(index) == 0:
        return []
    # Several faces may belong to one subject: look a little deeper than k subjects.
    keys, cos = index.search(vec[None].astype(np.float32), min(len(index), k * 4))
    cal = rt.calibration(space)
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
    space = coll["model"]
    threshold, threshold_far = far_threshold(rt, far or rt.settings.search_default_far, space)
    probes = _probes(
        rt, company_id, collection_id, image, embedding, face_token, all_faces, [space]
    )
    return {
        "collection_id": collection_id,
        "far": threshold_far,
        "faces": [
            {
                "box": box,
                "threshold": round(threshold, 6),
                "matches": _matches(rt, collection_id, vecs[space], k, threshold, space),
            }
            for box, vecs in probes
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
    ids = [(row["id"], row["name"], row["model"]) for row in lists]
    wanted = far or rt.settings.search_default_far
    # The answer's threshold and FAR are the server's space's; each blacklist is searched
    # at the threshold of its own space for the same FAR.
    threshold, threshold_far = far_threshold(rt, wanted)
    cuts = {sp: far_threshold(rt, wanted, sp)[0] for sp in {row[2] for row in ids}}
    spaces = sorted(cuts) or [rt.pool.embedding_space()]  # an embedding is checked anyway
    probes = _probes(rt, company_id, "", image, embedding, None, True, spaces)
    entries = []
    for box, vecs in probes:
        for cid, cname, sp in ids:
            for m in _matches(rt, cid, vecs[sp], k, cuts[sp], sp):
                entries.append({**m, "collection_id": cid, "collection_name": cname, "box": box})
    entries.sort(key=lambda m: -m["similarity"])
    return {
        "hit": bool(entries),
        "matches": entries,
        "threshold": round(threshold, 6),
        "far": threshold_far,
        "blacklists": len(ids),
    }
