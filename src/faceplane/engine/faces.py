"""The face pipeline: detect → landmarks → align → assess → embed, on one decoded image."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from faceplane.engine.detect import (
    RETINA_KEYPOINTS,
    Detection,
    Detector,
    RetinaFaceDetector,
    iou,
    shrink,
)
from faceplane.engine.embed import (
    ARCFACE_TEMPLATE,
    arcface_chip,
    embed_chips,
    fuse,
    normalise,
    similarity_transform,
)
from faceplane.engine.mesh import CanonicalFace, FaceMesh, FaceMesher, face_roi
from faceplane.engine.models.pool import ModelPool
from faceplane.engine.models.registry import DLIB_SPACE, MFN_SPACE, get_space
from faceplane.engine.quality import Quality, QualityPolicy, measure_quality

CHIP_SIZE = 150
CHIP_PADDING = 0.25  # dlib's ResNet was trained on chips with this padding
# Chip paddings per test-time-augmentation mode (chosen on LFW View 1 DevTrain).
TTA_PADDINGS = {"none": (CHIP_PADDING,), "flip": (CHIP_PADDING,), "multi": (0.25, 0.2, 0.3)}

# Landmark names, in the models' point order. "right" and "left" are the SUBJECT's, as in
# BlazeFace's keypoints and iBUG 300-W: the subject's right eye appears on the image's left.
# dlib's 5-point model: two corners of each eye (left eye first) and the base of the nose
# (where it meets the upper lip; the 68-point model's point 34).
LANDMARKS_5 = (
    "left_eye_outer",
    "left_eye_inner",
    "right_eye_outer",
    "right_eye_inner",
    "nose_base",
)
# dlib's 68-point model follows iBUG 300-W: regions in this order, each numbered from 1. The jaw
# runs from the subject's right ear to the left one; each eye and lip contour runs clockwise in
# the image from its leftmost point (the right eye's outer corner, the left eye's inner one).
_REGIONS_68 = (
    ("jaw", 17),
    ("right_eyebrow", 5),
    ("left_eyebrow", 5),
    ("nose_bridge", 4),
    ("nose_lower", 5),
    ("right_eye", 6),
    ("left_eye", 6),
    ("outer_lip", 12),
    ("inner_lip", 8),
)
LANDMARKS_68 = tuple(f"{region}_{i}" for region, n in _REGIONS_68 for i in range(1, n + 1))


def landmark_names(count: int) -> tuple[str, ...]:
    """The names of a landmark set of `count` points (5 or 68), in point order."""
    return LANDMARKS_68 if count == 68 else LANDMARKS_5


@dataclass(frozen=True)
class AnalyseOptions:
    """What to find and what to compute."""

    detector: str = "auto"  # auto | retinaface | blazeface | hog (see ModelPool.detector_name)
    det_threshold: float = 0.5
    min_face_size: int = 20
    max_faces: int = 100
    landmarks: int | str = 5  # 5, 68 or "mesh" (the 5 points plus the 468-point mesh)
    # Run the face mesh for quality (mesh pose, eye and mouth openness) whenever it is
    # installed, even when `landmarks` does not ask for it.
    mesh_quality: bool = True
    embeddings: bool = False
    tta: str = "flip"  # none | flip | multi (see Settings.embed_tta)
    detect_max_side: int = 1920
    quality: QualityPolicy = field(default_factory=QualityPolicy)


@dataclass
class Face:
    """One analysed face."""

    detection: Detection
    landmarks: np.ndarray  # (5, 2) or (68, 2), in the order of LANDMARKS_5 / LANDMARKS_68
    quality: Quality
    # L2-normalised, in the embedding space of the set in force (Analysis.models["space"]):
    # 128-d dlib_resnet_v1, or 320-d dlib_resnet_v1+mobilefacenet_v1 = [√α·dlib, √β·mfn].
    embedding: np.ndarray | None = None
    mesh: FaceMesh | None = None  # with landmarks="mesh" only

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, coordinates rounded to 0.1 px."""
        d = self.detection
        out: dict[str, Any] = {
            "box": {
                "x": round(d.x, 1),
                "y": round(d.y, 1),
                "width": round(d.w, 1),
                "height": round(d.h, 1),
            },
            "score": round(d.score, 4),
            "landmarks": {
                name: [round(float(x), 1), round(float(y), 1)]
                for name, (x, y) in zip(
                    landmark_names(len(self.landmarks)), self.landmarks, strict=True
                )
            },
            "quality": self.quality.as_dict(),
        }
        if d.keypoints is not None:
            out["keypoints"] = {
                name: [round(float(p[0]), 1), round(float(p[1]), 1)]
                for name, p in zip(d.keypoint_names, d.keypoints, strict=True)
            }
        if self.mesh is not None:
            out["mesh"] = [[round(float(v), 1) for v in p] for p in self.mesh.points]
            out["mesh_score"] = round(self.mesh.presence, 4)
        if self.embedding is not None:
            out["embedding"] = [round(float(v), 6) for v in self.embedding]
        return out


@dataclass
class Analysis:
    """All faces of one image, largest first, and the models that made them."""

    width: int
    height: int
    faces: list[Face]
    models: dict[str, str]


def _detect(pool: ModelPool, rgb: np.ndarray, opts: AnalyseOptions) -> list[Detection]:
    """The chosen detector on `rgb`, as `detect_scaled` runs it."""
    return detect_scaled(
        pool.detector(opts.detector), rgb, opts.det_threshold, opts.detect_max_side
    )


def detect_scaled(
    detector: Detector, rgb: np.ndarray, threshold: float, max_side: int
) -> list[Detection]:
    """Detect on a copy no larger than `max_side` (nor than the detector ever looks at), and
    map boxes and keypoints back to full size."""
    h, w = rgb.shape[:2]
    limit = min(max_side, getattr(detector, "max_input_side", max_side))
    scale = min(1.0, limit / max(h, w))
    small, used_w, used_h = rgb, w, h
    if scale != 1.0:
        small, used_w, used_h = shrink(rgb, round(w * scale), round(h * scale))
    found = detector.detect(small, threshold)
    if scale != 1.0:
        fx, fy = used_w / small.shape[1], used_h / small.shape[0]
        for d in found:
            d.x, d.y, d.w, d.h = d.x * fx, d.y * fy, d.w * fx, d.h * fy
            if d.keypoints is not None:
                d.keypoints = d.keypoints * np.array([fx, fy], dtype=np.float32)
    return found


MESH_MIN_PRESENCE = 0.5


def _mesh_models(
    pool: ModelPool, opts: AnalyseOptions, needed: bool
) -> tuple[FaceMesher | None, CanonicalFace | None]:
    """The mesh model and canonical face to use: required (MODEL_UNAVAILABLE when missing)
    with landmarks="mesh", else used for quality when installed; the canonical face (for the
    mesh pose) only when installed."""
    if not needed:
        if opts.landmarks == "mesh":
            pool.mesh()  # a missing model is refused even on an image without faces
        return None, None
    if opts.landmarks == "mesh" or (opts.mesh_quality and pool.present("mediapipe_face_mesh")):
        mesher = pool.mesh()
        canonical = pool.face_geometry() if pool.present("mediapipe_face_geometry") else None
        return mesher, canonical
    return None, None


def _run_mesh(mesher: FaceMesher, rgb: np.ndarray, d: Detection, pts5: np.ndarray) -> FaceMesh:
    """The mesh of one face, its crop turned upright by the detector's eye keypoints (dlib's
    5 points when the detector has none)."""
    if d.keypoints is not None:
        right_eye, left_eye = d.keypoints[0], d.keypoints[1]
    else:
        right_eye, left_eye = pts5[2:4].mean(0), pts5[0:2].mean(0)
    return mesher.run(rgb, face_roi((d.x, d.y, d.w, d.h), right_eye, left_eye))


# Five points for MobileFaceNet when the detector gives none: RetinaFace on a square crop of
# the face box enlarged this much, resized to this side (the face about 95 px across).
FIVE_POINT_CROP = 2.0
FIVE_POINT_SIDE = 192
FIVE_POINT_MIN_SCORE = 0.2


def _five_points_from_dlib(shape5: np.ndarray) -> np.ndarray:
    """Five ArcFace points from dlib's 5 (eye corners, nose base): the eye centres place the
    template; the nose tip and mouth corners come from the template's geometry."""
    right_eye = shape5[2:4].mean(0)  # the subject's right eye, on the image's left
    left_eye = shape5[0:2].mean(0)
    m = similarity_transform(ARCFACE_TEMPLATE[:2], np.stack([right_eye, left_eye]))
    return np.asarray(ARCFACE_TEMPLATE @ m[:, :2].T + m[:, 2], dtype=np.float32)


def five_points(
    pool: ModelPool, rgb: np.ndarray, detection: Detection, shape5: np.ndarray
) -> np.ndarray:
    """The five ArcFace alignment points (RetinaFace's order) of one detected face.

    A detection with RetinaFace's five named keypoints carries them. For other detectors
    RetinaFace runs on an enlarged crop of the face box and its best candidate overlapping
    the box gives them; without RetinaFace, or when it finds nothing there, they come from
    dlib's 5 points.
    """
    d = detection
    names = list(d.keypoint_names)
    if d.keypoints is not None and all(n in names for n in RETINA_KEYPOINTS):
        return np.asarray(d.keypoints[[names.index(n) for n in RETINA_KEYPOINTS]], np.float32)
    if not pool.present("retinaface_mnet025"):
        return _five_points_from_dlib(shape5)
    side = FIVE_POINT_CROP * max(d.w, d.h)
    cx, cy = d.x + d.w / 2, d.y + d.h / 2
    k = FIVE_POINT_SIDE / side
    m = np.array([[k, 0, FIVE_POINT_SIDE / 2 - k * cx], [0, k, FIVE_POINT_SIDE / 2 - k * cy]])
    crop = cv2.warpAffine(rgb, m, (FIVE_POINT_SIDE, FIVE_POINT_SIDE), flags=cv2.INTER_LINEAR)
    retina = pool.detector("retinaface")
    assert isinstance(retina, RetinaFaceDetector)
    boxes, scores, kps = retina.raw(crop, FIVE_POINT_MIN_SCORE)
    if len(scores) == 0:
        return _five_points_from_dlib(shape5)
    c = FIVE_POINT_SIDE / 2
    expected = np.array([c - k * d.w / 2, c - k * d.h / 2, c + k * d.w / 2, c + k * d.h / 2])
    overlap = iou(expected, boxes)
    ok = overlap >= 0.3
    if not ok.any():
        return _five_points_from_dlib(shape5)
    best = int(np.argmax(np.where(ok, scores, -1.0)))
    return np.asarray((kps[best] - m[:, 2]) / k, dtype=np.float32)


def _dlib_part(pool: ModelPool, rgb: np.ndarray, shapes: list[Any], tta: str) -> np.ndarray:
    import dlib

    paddings = TTA_PADDINGS[tta]
    chips = np.stack(
        [dlib.get_face_chip(rgb, s, size=CHIP_SIZE, padding=p) for s in shapes for p in paddings]
    )
    return embed_chips(pool.embedder(), chips, tta != "none", len(paddings))


def _mfn_part(
    pool: ModelPool,
    rgb: np.ndarray,
    detections: list[Detection],
    shapes: list[Any],
    tta: str,
) -> np.ndarray:
    pts = [
        five_points(pool, rgb, d, np.array([[p.x, p.y] for p in s.parts()], dtype=np.float32))
        for d, s in zip(detections, shapes, strict=True)
    ]
    chips = np.stack([arcface_chip(rgb, p) for p in pts])
    # MobileFaceNet's only augmentation is the mirror image (`multi` paddings are dlib's).
    return embed_chips(pool.embedder("mobilefacenet"), chips, tta != "none")


def embed_faces(
    pool: ModelPool,
    rgb: np.ndarray,
    detections: list[Detection],
    shapes: list[Any],
    tta: str,
    space: str | None = None,
) -> np.ndarray:
    """Unit vectors of `space` (default: the set in force) for faces with dlib 5-point shapes."""
    spec = get_space(space or pool.embedding_space())
    parts = []
    for part in spec.parts:
        if part.space == DLIB_SPACE:
            parts.append(_dlib_part(pool, rgb, shapes, tta))
        elif part.space == MFN_SPACE:
            parts.append(_mfn_part(pool, rgb, detections, shapes, tta))
        else:  # pragma: no cover - every space in the registry is built from these parts
            raise ValueError(f"no embedder makes {part.space}")
    return normalise(fuse(spec.name, parts))


def analyse_image(pool: ModelPool, rgb: np.ndarray, opts: AnalyseOptions) -> Analysis:
    """Find, measure and optionally embed every face of an RGB uint8 image."""
    import dlib

    found = _detect(pool, rgb, opts)
    found = [d for d in found if min(d.w, d.h) >= opts.min_face_size]
    found.sort(key=lambda d: d.area, reverse=True)
    found = found[: opts.max_faces]

    detector_name = pool.detector(opts.detector).name
    models = {"detector": detector_name, "landmarks": "dlib_5pt"}
    predictor5 = pool.shape_predictor(5) if found else None
    predictor68 = pool.shape_predictor(68) if found and opts.landmarks == 68 else None
    if opts.landmarks == 68:
        models["landmarks"] = "dlib_68pt"

    mesher, canonical = _mesh_models(pool, opts, bool(found))
    if mesher is not None:
        models["mesh"] = mesher.name

    faces: list[Face] = []
    shapes = []
    for d in found:
        rect = dlib.rectangle(int(d.x), int(d.y), int(d.x + d.w), int(d.y + d.h))
        assert predictor5 is not None
        shape = predictor5(rgb, rect)
        shapes.append(shape)
        pts5 = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)
        pts = pts5
        if predictor68 is not None:
            s68 = predictor68(rgb, rect)
            pts = np.array([[p.x, p.y] for p in s68.parts()], dtype=np.float32)
        if d.keypoints is not None:
            pose_points, pose_names = d.keypoints, d.keypoint_names
        else:
            pose_points, pose_names = pts5, LANDMARKS_5
        mesh = _run_mesh(mesher, rgb, d, pts5) if mesher is not None else None
        # A crop the mesh model does not see a face in gives no mesh-based measures.
        usable = mesh.points if mesh is not None and mesh.presence >= MESH_MIN_PRESENCE else None
        quality = measure_quality(
            rgb, (d.x, d.y, d.w, d.h), pose_points, opts.quality, pose_names, usable, canonical
        )
        faces.append(Face(d, pts, quality, mesh=mesh if opts.landmarks == "mesh" else None))

    if opts.embeddings:
        models["embedder"] = pool.embedder_name()
        models["space"] = pool.embedding_space()
    if opts.embeddings and faces:
        vectors = embed_faces(pool, rgb, [f.detection for f in faces], shapes, opts.tta)
        for face, vec in zip(faces, vectors, strict=True):
            face.embedding = vec
    return Analysis(rgb.shape[1], rgb.shape[0], faces, models)
