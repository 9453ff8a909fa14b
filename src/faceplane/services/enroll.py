"""Enroll: faces of an image into a subject, through a quality gate that explains itself."""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
from sqlalchemy import insert

from faceplane.effects.thumbs import crop_box, encode_jpeg
from faceplane.engine.faces import Face, analyse_image
from faceplane.errors import Err, FaceplaneError
from faceplane.runtime import Runtime
from faceplane.services.collections import (
    check_collection_room,
    check_space,
    check_subject_room,
    current_space,
    load_collection,
    load_subject,
    new_id,
    to_collection_space,
)
from faceplane.services.images import ImageSource, load_image
from faceplane.store.db import faces, write_tx

# The enroll gate's reasons, in the order they are reported, with their codes.
GATE_CODES = {
    "too_small": Err.FACE_TOO_SMALL,
    "size_ratio": Err.FACE_SIZE_RATIO,
    "incomplete": Err.FACE_INCOMPLETE,
    "eyes_closed": Err.FACE_EYES_CLOSED,
    "left_eye_occluded": Err.FACE_LEFT_EYE_OCCLUDED,
    "right_eye_occluded": Err.FACE_RIGHT_EYE_OCCLUDED,
    "blurry": Err.FACE_BLURRY,
    "too_dark": Err.FACE_POOR_LIGHTING,
    "too_bright": Err.FACE_POOR_LIGHTING,
    "uneven_lighting": Err.FACE_POOR_LIGHTING,
    "not_frontal": Err.FACE_NOT_FRONTAL,
    "compressed": Err.FACE_POOR_QUALITY,
    "nose_occluded": Err.FACE_NOSE_OCCLUDED,
    "mouth_occluded": Err.FACE_MOUTH_OCCLUDED,
    "chin_occluded": Err.FACE_CHIN_OCCLUDED,
    "left_cheek_occluded": Err.FACE_LEFT_SIDE_OCCLUDED,
    "right_cheek_occluded": Err.FACE_RIGHT_SIDE_OCCLUDED,
    "low_score": Err.FACE_QUALITY_SCORE_LOW,
}


def _gate_error(index: int, reasons: list[dict[str, Any]]) -> FaceplaneError:
    first = reasons[0]
    return FaceplaneError(
        GATE_CODES[first["reason"]],
        f"Face {index} is not fit for a gallery: "
        + ", ".join(f"{r['measure']} {r['value']} (limit {r['limit']})" for r in reasons)
        + ".",
        face_index=index,
        reasons=reasons,
    )


def enroll_faces(
    rt: Runtime,
    company_id: str,
    collection_id: str,
    subject_id: str,
    source: ImageSource,
    face: str = "largest",
    keep_crop: bool | None = None,
    quality_threshold: str | None = None,
) -> dict[str, Any]:
    """Enroll the largest face, face number N, or `all` faces of an image into a subject.

    Faces that fail the quality policy are refused with the specific code (one face asked) or
    listed under `unindexed` with their reasons (all faces). Faces that would take the subject
    or the collection past its limit refuse the whole call (FACE_LIMIT_EXCEEDED): nothing is
    enrolled. A crop is kept only when the server keeps crops (enroll_keep_crops) and the
    caller did not decline one (keep_crop=False). `quality_threshold` is the gate's level for
    this call (NONE, AUTO, LOW, MEDIUM, HIGH; default the server's).
    """
    store = rt.store
    name, _ = current_space(rt)
    with store.db.connect() as conn:
        coll = load_collection(conn, company_id, collection_id)
        load_subject(conn, company_id, collection_id, subject_id)
    check_space(rt, coll)
    space = coll["model"]  # the server's space, or one made of some of its parts
    image = load_image(rt, source)
    policy = rt.quality_policy().with_level(quality_threshold)
    opts = rt.analyse_options(embeddings=True, quality=policy)
    analysis = analyse_image(rt.pool, image.rgb, opts)
    if not analysis.faces:
        raise FaceplaneError(
            Err.FACE_NOT_FOUND, "No face was found in the image.", field=source.field
        )
    if face == "all":
        chosen = list(enumerate(analysis.faces))
    else:
        index = 0 if face == "largest" else int(face)
        if not 0 <= index < len(analysis.faces):
            raise FaceplaneError(
                Err.FACE_INDEX_OUT_OF_RANGE,
                f"The image has {len(analysis.faces)} face(s); index {index} is out of range.",
                faces=len(analysis.faces),
            )
        chosen = [(index, analysis.faces[index])]
    accepted: list[tuple[int, Face]] = []
    unindexed = []
    for i, f in chosen:
        # The policy detect's `issues` came from: enroll refuses exactly what detect reports.
        reasons = opts.quality.reasons(f.quality)
        if reasons:
            if face != "all":
                raise _gate_error(i, reasons)
            unindexed.append({"face_index": i, "box": f.as_dict()["box"], "reasons": reasons})
        else:
            accepted.append((i, f))
    if not accepted:
        raise _gate_error(unindexed[0]["face_index"], unindexed[0]["reasons"])
    # The server's privacy setting wins: a caller may decline a crop, never ask for one the
    # server does not keep.
    keep = rt.settings.enroll_keep_crops and keep_crop is not False
    enrolled = []
    now = time.time()
    with write_tx(store.db) as conn:
        load_subject(conn, company_id, collection_id, subject_id)
        # All or nothing, inside the write transaction: a call that would pass a limit enrolls
        # no face, so a client can retry with fewer faces and knows what is stored.
        check_subject_room(rt, conn, subject_id, len(accepted))
        check_collection_room(rt, conn, collection_id, len(accepted))
        for i, f in accepted:
            token = new_id()
            d = f.detection
            crop_key = None
            if keep:
                crop = crop_box(image.rgb, (d.x, d.y, d.w, d.h), 0.25, 160)
                crop_key = store.blobs.put(
                    f"collections/{collection_id}/faces/{token}.jpg", encode_jpeg(crop)
                )
            assert f.embedding is not None
            box = f.as_dict()["box"]
            conn.execute(
                insert(faces).values(
                    token=token,
                    collection_id=collection_id,
                    subject_id=subject_id,
                    model=space,
                    embedding=np.asarray(
                        to_collection_space(rt, f.embedding[None], coll)[0], dtype="<f4"
                    ).tobytes(),
                    quality_json=json.dumps(f.quality.as_dict()),
                    box_json=json.dumps(box),
                    crop_key=crop_key,
                    created_at=now,
                )
            )
            enrolled.append(
                {"face_token": token, "face_index": i, "box": box, "quality": f.quality.as_dict()}
            )
    store.indexes.get(store.db, collection_id)  # searchable now, in this process too
    first = enrolled[0]
    return {
        "face_token": first["face_token"],
        "faces": enrolled,
        "unindexed": unindexed,
        "embedder": name,
    }
