"""Use cases on faces: detect (analyse) one image, compare two faces."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from faceplane.engine.embed import can_project, normalise, project
from faceplane.engine.faces import AnalyseOptions, Analysis, analyse_image
from faceplane.engine.models.registry import SPACES
from faceplane.engine.similarity import raw_score
from faceplane.errors import Err, FaceplaneError
from faceplane.runtime import Runtime
from faceplane.services.images import ImageSource, load_image


@dataclass(frozen=True)
class DetectRequest:
    """Per-request detection options (None = the server's default)."""

    max_faces: int | None = None
    min_face_size: int | None = None
    det_threshold: float | None = None
    landmarks: int | str = 5  # 5, 68 or "mesh"
    return_embedding: bool = False
    detector: str | None = None
    quality_threshold: str | None = None  # NONE | AUTO | LOW | MEDIUM | HIGH

    @classmethod
    def from_params(cls, params: object) -> DetectRequest:
        """The request named by any options object with the same field names (a field the
        object lacks, as compare's options lack `quality_threshold`, keeps its default)."""
        given: dict[str, Any] = {
            f.name: getattr(params, f.name) for f in fields(cls) if hasattr(params, f.name)
        }
        return cls(**given)

    def analyse_options(self, rt: Runtime, embeddings: bool | None = None) -> AnalyseOptions:
        """The engine's options for this request, on the server's defaults."""
        return rt.analyse_options(
            max_faces=self.max_faces,
            min_face_size=self.min_face_size,
            det_threshold=self.det_threshold,
            detector=self.detector,
            landmarks=self.landmarks,
            embeddings=self.return_embedding if embeddings is None else embeddings,
            quality=rt.quality_policy().with_level(self.quality_threshold),
        )


def analysis_json(analysis: Analysis) -> dict[str, Any]:
    """The `detect` answer body (without request_id)."""
    return {
        "image": {"width": analysis.width, "height": analysis.height},
        "faces": [f.as_dict() for f in analysis.faces],
        "models": analysis.models,
    }


def detect_faces(rt: Runtime, source: ImageSource, req: DetectRequest) -> dict[str, Any]:
    """Find every face in one image with landmarks and quality, largest first."""
    image = load_image(rt, source)
    return analysis_json(analyse_image(rt.pool, image.rgb, req.analyse_options(rt)))


@dataclass(frozen=True)
class CompareSide:
    """One side of a comparison: an image (and which face in it) or a ready embedding."""

    image: ImageSource | None = None
    embedding: list[float] | None = None
    face_index: int = 0


def _side_vector(
    rt: Runtime, side: CompareSide, name: str, req: DetectRequest
) -> tuple[np.ndarray, dict[str, Any] | None, str]:
    """The normalised embedding of one side, the face it came from, and its space.

    An embedding's length names its space: 128 dlib_resnet_v1, 320 the fused
    dlib_resnet_v1+mobilefacenet_v1 (192 MobileFaceNet alone).
    """
    if side.embedding is not None:
        vec = np.asarray(side.embedding, dtype=np.float32)
        by_dim = {sp.dim: n for n, sp in SPACES.items()}
        if vec.ndim != 1 or len(vec) not in by_dim or not np.all(np.isfinite(vec)) or not vec.any():
            sizes = ", ".join(f"{d} ({n})" for d, n in sorted(by_dim.items()))
            raise FaceplaneError(
                Err.EMBEDDING_INVALID,
                f"`{name}` must be {sizes} finite numbers, not all zero.",
                field=name,
                lengths=sorted(by_dim),
            )
        return normalise(vec[None])[0], None, by_dim[len(vec)]
    assert side.image is not None
    image = load_image(rt, side.image)
    analysis = analyse_image(rt.pool, image.rgb, req.analyse_options(rt, True))
    if not analysis.faces:
        raise FaceplaneError(Err.FACE_NOT_FOUND, f"No face was found in `{name}`.", field=name)
    if side.face_index >= len(analysis.faces) or side.face_index < 0:
        raise FaceplaneError(
            Err.FACE_INDEX_OUT_OF_RANGE,
            f"`{name}` has {len(analysis.faces)} face(s); face index {side.face_index} is out "
            "of range.",
            field=name,
            faces=len(analysis.faces),
        )
    face = analysis.faces[side.face_index]
    assert face.embedding is not None
    used = face.as_dict()
    used.pop("embedding", None)
    used.pop("landmarks", None)
    used.pop("mesh", None)
    used["index"] = side.face_index
    return face.embedding, used, analysis.models["space"]


def _common_space(sa: str, sb: str) -> str:
    """The space both sides can be compared in: the same, or the one made of the other's
    parts (a fused vector against a 128-d dlib one compares their dlib parts)."""
    if sa == sb or can_project(sb, sa):
        return sa
    if can_project(sa, sb):
        return sb
    raise FaceplaneError(
        Err.EMBEDDING_MODEL_MISMATCH,
        f"A {sa} embedding cannot be compared with a {sb} one.",
        model=sa,
        other_model=sb,
    )


def far_value(far: float) -> float:
    """A FAR as answered: three significant digits (it is a rate, not a measurement to 1e-6)."""
    return float(f"{far:.3g}")


def compare_faces(
    rt: Runtime, a: CompareSide, b: CompareSide, req: DetectRequest, far: float | None = None
) -> dict[str, Any]:
    """Compare two faces 1:1: the similarity on the calibrated scale, the FAR its score
    corresponds to, and `match` at the FAR asked for (else FACEPLANE_COMPARE_FAR)."""
    rt.compare_threshold(None, far)  # a FAR the table cannot reach fails before any work
    # Each side's errors name the field the client sent it in.
    va, face_a, space_a = _side_vector(rt, a, a.image.field if a.image else "image1", req)
    vb, face_b, space_b = _side_vector(rt, b, b.image.field if b.image else "image2", req)
    space = _common_space(space_a, space_b)
    va, vb = project(va[None], space_a, space)[0], project(vb[None], space_b, space)[0]
    model = rt.pool.embedder_name_for(space)
    threshold, threshold_far = rt.compare_threshold(space, far)
    cal = rt.calibration(space)
    score, dist = raw_score(va, vb)
    sim = cal.similarity(score)
    return {
        "similarity": round(sim, 6),
        "far": far_value(cal.far(score)),
        "distance": round(dist, 6),
        "threshold": round(threshold, 6),
        "threshold_far": far_value(threshold_far),
        "match": sim >= threshold,
        "model": model,
        "space": space,
        "face1": face_a,
        "face2": face_b,
    }
