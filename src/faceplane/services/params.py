"""Validated options of each operation, shared by the HTTP routes and the task API."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from faceplane.engine.quality import QualityLevel

_QUALITY_THRESHOLD = (
    "The quality gate's level for this request (AWS QualityFilter's names): NONE refuses "
    "nothing, LOW/MEDIUM/HIGH raise the unified score's bar, AUTO is the one chosen from the "
    "error-versus-discard curve (default: the server's FACEPLANE_QUALITY_FILTER)."
)


class DetectParams(BaseModel):
    """Options of /v1/detect (and of each side of /v1/compare)."""

    model_config = ConfigDict(extra="ignore")
    max_faces: int | None = Field(None, ge=1, le=1000, description="Largest faces returned.")
    min_face_size: int | None = Field(None, ge=0, description="Smallest face side, in pixels.")
    det_threshold: float | None = Field(None, ge=0.0, le=1.0, description="Detection score cut.")
    landmarks: int | str = Field(
        5,
        description="5 points, 68 on request, or `mesh`: the 5 points plus the 468-point "
        "face mesh (`mesh`, [x, y, z] each).",
        json_schema_extra={"enum": [5, 68, "mesh"]},
    )
    return_embedding: bool = Field(
        False,
        description="Return each face's unit embedding in the server's space (`models.space`): "
        "320 values for dlib_resnet_v1+mobilefacenet_v1, laid out [√0.8·dlib (128), "
        "√0.2·MobileFaceNet (192)] so that its cosine is the fused score; 128 for "
        "dlib_resnet_v1 (its first 128 values, renormalised, are the dlib_resnet_v1 vector).",
    )
    detector: Literal["auto", "retinaface", "blazeface", "hog"] | None = Field(
        None, description="Face detector (default: the server's `FACEPLANE_DETECTOR`)."
    )
    require_face: bool = Field(
        False,
        description="Answer FACE_NOT_FOUND instead of an empty `faces` list (compare and crop "
        "always do).",
    )
    quality_threshold: QualityLevel | None = Field(
        None, description=_QUALITY_THRESHOLD + " Detect's `issues` are judged at it."
    )

    @field_validator("landmarks", mode="before")
    @classmethod
    def _five_68_or_mesh(cls, v: object) -> int | str:
        # Forms send text: "68" is 68; "mesh" in any case is the mesh; nothing else passes
        # (not 5.0, not True).
        if isinstance(v, str):
            text = v.strip().lower()
            if text == "mesh":
                return "mesh"
            if text in ("5", "68"):
                return int(text)
        elif isinstance(v, int) and not isinstance(v, bool) and v in (5, 68):
            return v
        raise ValueError("must be 5, 68 or mesh")


class CompareParams(DetectParams):
    """Options of /v1/compare."""

    face_index1: int = Field(0, ge=0, description="Which face of image1 (0 = the largest).")
    face_index2: int = Field(0, ge=0, description="Which face of image2 (0 = the largest).")
    embedding1: list[float] | None = Field(
        None,
        description="An embedding instead of image1: 320 values (fused space) or 128 "
        "(dlib_resnet_v1); a 320 against a 128 compares their dlib parts.",
    )
    embedding2: list[float] | None = Field(
        None, description="An embedding instead of image2 (as embedding1)."
    )
    far: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="False-accept rate `match` is decided at (default FACEPLANE_COMPARE_FAR, "
        "1e-4); the smallest calibrated is 1e-6.",
    )


class CropParams(DetectParams):
    """Options of the `crop` operation."""

    margin: float = Field(0.25, ge=0.0, le=2.0, description="Extra border per side, × face size.")
    size: int | None = Field(None, ge=16, le=2048, description="Output side in pixels (square).")
    all_faces: bool = Field(False, description="Crop every face, not only the largest.")


class EnrollParams(BaseModel):
    """Options of `enroll`."""

    model_config = ConfigDict(extra="ignore")
    collection_id: str = Field(description="The collection.")
    subject_id: str = Field(description="The subject (person) the faces belong to.")
    face: str = Field(
        "largest",
        pattern=r"^(largest|all|\d+)$",
        description="`largest`, `all`, or a face index (0 = largest).",
    )
    keep_crop: bool | None = Field(
        None,
        description="`false` declines a crop; a crop is kept only when the server keeps crops "
        "(FACEPLANE_ENROLL_KEEP_CROPS).",
    )
    quality_threshold: QualityLevel | None = Field(None, description=_QUALITY_THRESHOLD)


class SearchParams(BaseModel):
    """Options of `search`."""

    model_config = ConfigDict(extra="ignore")
    collection_id: str = Field(description="The collection to search.")
    embedding: list[float] | None = Field(
        None,
        description="Probe with an embedding of the collection's space (320 values for "
        "dlib_resnet_v1+mobilefacenet_v1, 128 for dlib_resnet_v1; a 320 is accepted by a "
        "128 collection, by its dlib part).",
    )
    face_token: str | None = Field(None, description="Probe with an enrolled face.")
    all_faces: bool = Field(False, description="Search every face of the image.")
    k: int = Field(5, ge=1, le=100, description="Subjects returned per probe face.")
    far: float | None = Field(
        None, gt=0, lt=1, description="False-accept rate of the threshold (1e-3 … 1e-6)."
    )


class BlacklistParams(BaseModel):
    """Options of `blacklist_check`."""

    model_config = ConfigDict(extra="ignore")
    embedding: list[float] | None = Field(
        None,
        description="Probe with an embedding of the collection's space (320 values for "
        "dlib_resnet_v1+mobilefacenet_v1, 128 for dlib_resnet_v1; a 320 is accepted by a "
        "128 collection, by its dlib part).",
    )
    k: int = Field(5, ge=1, le=100, description="Entries returned per blacklist and face.")
    far: float | None = Field(
        None, gt=0, lt=1, description="False-accept rate of the threshold (1e-3 … 1e-6)."
    )
