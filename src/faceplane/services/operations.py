"""The operations every caller can run, synchronously or as a task: one registry, one path."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from faceplane.effects.thumbs import THUMB_SIDES, crop_box, encode_jpeg, thumbnail
from faceplane.engine.faces import analyse_image
from faceplane.errors import Err, FaceplaneError
from faceplane.runtime import Runtime
from faceplane.services.enroll import enroll_faces
from faceplane.services.faces import (
    CompareSide,
    DetectRequest,
    analysis_json,
    compare_faces,
    detect_faces,
)
from faceplane.services.images import ImageSource, download_images, load_image
from faceplane.services.params import (
    BlacklistParams,
    CompareParams,
    CropParams,
    DetectParams,
    EnrollParams,
    SearchParams,
)
from faceplane.services.search import check_blacklists, search_collection


@dataclass
class OperationResult:
    """A JSON body and the images it produced (name → JPEG bytes)."""

    body: dict[str, Any]
    images: dict[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class Operation:
    """One operation: the images it takes, its options model, and its service function."""

    name: str
    image_fields: tuple[str, ...]
    params: type[BaseModel]
    run: Callable[[Runtime, dict[str, ImageSource], Any, str], OperationResult]
    # Fields that may be given instead of an image (compare takes embeddings).
    optional_images: bool = False


def _image(images: dict[str, ImageSource], name: str) -> ImageSource:
    return images.get(name, ImageSource(field=name))


def run_detect(
    rt: Runtime, images: dict[str, ImageSource], p: DetectParams, company_id: str
) -> OperationResult:
    """Detect faces in `image`; with `require_face`, no face is FACE_NOT_FOUND."""
    body = detect_faces(rt, _image(images, "image"), DetectRequest.from_params(p))
    if p.require_face and not body["faces"]:
        # Checked here, not by the caller, so a task fails exactly as the synchronous call.
        raise FaceplaneError(Err.FACE_NOT_FOUND, "No face was found in `image`.", field="image")
    return OperationResult(body)


def compare_sides(
    images: dict[str, ImageSource], p: CompareParams
) -> tuple[CompareSide, CompareSide]:
    """The two sides of a comparison: each an image or an embedding."""
    side1 = CompareSide(
        image=None if p.embedding1 else _image(images, "image1"),
        embedding=p.embedding1,
        face_index=p.face_index1,
    )
    side2 = CompareSide(
        image=None if p.embedding2 else _image(images, "image2"),
        embedding=p.embedding2,
        face_index=p.face_index2,
    )
    return side1, side2


def run_compare(
    rt: Runtime, images: dict[str, ImageSource], p: CompareParams, company_id: str
) -> OperationResult:
    """Compare the faces of `image1` and `image2` (or two embeddings)."""
    a, b = compare_sides(images, p)
    return OperationResult(compare_faces(rt, a, b, DetectRequest.from_params(p), p.far))


def run_crop(
    rt: Runtime, images: dict[str, ImageSource], p: CropParams, company_id: str
) -> OperationResult:
    """Cut faces out of `image`: the largest (the result) or all; with thumbnails."""
    image = load_image(rt, _image(images, "image"))
    opts = DetectRequest.from_params(p).analyse_options(rt)
    analysis = analyse_image(rt.pool, image.rgb, opts)
    if not analysis.faces:
        raise FaceplaneError(Err.FACE_NOT_FOUND, "No face was found in `image`.", field="image")
    faces = analysis.faces if p.all_faces else analysis.faces[:1]
    body = analysis_json(analysis)
    body["faces"] = body["faces"][: len(faces)]
    out: dict[str, bytes] = {}
    for i, face in enumerate(faces):
        d = face.detection
        crop = crop_box(image.rgb, (d.x, d.y, d.w, d.h), p.margin, p.size)
        out[f"face{i}"] = encode_jpeg(crop)
        body["faces"][i]["crop"] = {
            "image": f"face{i}",
            "width": crop.shape[1],
            "height": crop.shape[0],
        }
        if i == 0:
            out["result"] = out["face0"]
            for n, side in enumerate(THUMB_SIDES, start=1):
                out[f"thumb{n}"] = encode_jpeg(thumbnail(crop, side))
    for n, side in enumerate(THUMB_SIDES, start=1):
        out[f"thumb_ini{n}"] = encode_jpeg(thumbnail(image.rgb, side))
    return OperationResult(body, out)


def run_enroll(
    rt: Runtime, images: dict[str, ImageSource], p: EnrollParams, company_id: str
) -> OperationResult:
    """Enroll faces of `image` into a subject of a collection."""
    return OperationResult(
        enroll_faces(
            rt,
            company_id,
            p.collection_id,
            p.subject_id,
            _image(images, "image"),
            p.face,
            p.keep_crop,
            p.quality_threshold,
        )
    )


def run_search(
    rt: Runtime, images: dict[str, ImageSource], p: SearchParams, company_id: str
) -> OperationResult:
    """Search a collection with an image, an embedding or a face token."""
    return OperationResult(
        search_collection(
            rt,
            company_id,
            p.collection_id,
            image=images.get("image"),
            embedding=p.embedding,
            face_token=p.face_token,
            all_faces=p.all_faces,
            k=p.k,
            far=p.far,
        )
    )


def run_blacklist_check(
    rt: Runtime, images: dict[str, ImageSource], p: BlacklistParams, company_id: str
) -> OperationResult:
    """Check every face of `image` against every blacklist of the caller."""
    return OperationResult(
        check_blacklists(rt, company_id, images.get("image"), p.embedding, p.far, p.k)
    )


OPERATIONS: dict[str, Operation] = {
    op.name: op
    for op in (
        Operation("detect", ("image",), DetectParams, run_detect),
        Operation("compare", ("image1", "image2"), CompareParams, run_compare, True),
        Operation("crop", ("image",), CropParams, run_crop),
        Operation("enroll", ("image",), EnrollParams, run_enroll),
        Operation("search", ("image",), SearchParams, run_search, True),
        Operation("blacklist_check", ("image",), BlacklistParams, run_blacklist_check, True),
    )
}


def get_operation(name: str) -> Operation:
    """The operation called `name`, or INVALID_ARGUMENT listing the known ones."""
    op = OPERATIONS.get(name)
    if op is None:
        raise FaceplaneError(
            Err.INVALID_ARGUMENT,
            f"Unknown operation {name!r}; known: {', '.join(sorted(OPERATIONS))}.",
            operation=name,
        )
    return op


def validate_options(op: Operation, options: dict[str, Any]) -> BaseModel:
    """The operation's options model, or INVALID_ARGUMENT naming each bad field."""
    try:
        return op.params.model_validate(options)
    except ValidationError as exc:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"]), "problem": e["msg"]} for e in exc.errors()
        ]
        fields = ", ".join(e["field"] for e in errors)
        raise FaceplaneError(
            Err.INVALID_ARGUMENT, f"Invalid value for: {fields}.", errors=errors
        ) from None


def run_operation(
    rt: Runtime,
    name: str,
    images: dict[str, ImageSource],
    options: dict[str, Any],
    company_id: str,
) -> OperationResult:
    """Validate the options and run one operation: the one path for sync calls and tasks."""
    op = get_operation(name)
    params = validate_options(op, options)
    # URLs not downloaded by the caller (a task worker's inputs) are downloaded here.
    return op.run(rt, download_images(rt, images), params, company_id)
