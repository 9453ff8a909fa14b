"""Face quality: component measures, one unified score, and the reasons a face is unusable.

The components follow ISO/IEC 29794-5 (and OFIQ, its open implementation) in spirit: each is a
separate, documented measure with a fixed range, taken on the face aligned to a fixed scale
(the eye centres 48 px apart in a 160×160 chip, `CHIP_SIDE`/`CHIP_EYES`), so that the same
face measures the same at any resolution. Regions (skin, each eye, nose, mouth, chin,
cheeks) come from the 468-point face mesh when it ran; without it the measures that need a
region of the mesh are absent (None) and the rest use a fixed ellipse of the chip.

The unified score (0–100, `quality_score.py`) is fitted from these components against
recognition outcome, and the policy (`QualityPolicy`) refuses by that score plus a few hard
reasons that always hurt: a face too small, cut by the frame, eyes closed or eyes covered.
Every other component explains a low score (a reason is listed only when the score is below
the level), so a sharp, well-lit face is never refused for one number a taste chose.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal, get_args

import cv2
import numpy as np

from faceplane.engine.mesh import (
    FACE_OVAL,
    LEFT_EYE,
    LEFT_EYEBROW,
    OUTER_LIPS,
    RIGHT_EYE,
    RIGHT_EYEBROW,
    CanonicalFace,
    eye_openness,
    mesh_pose,
    mouth_openness,
)
from faceplane.engine.quality_score import level_thresholds, unified_score

# A generic head, in millimetres, image axes (x right, y down, z towards the camera), nose tip
# at the origin. Points follow BlazeFace's keypoints: right eye, left eye, nose tip, mouth,
# right ear tragion, left ear tragion (the subject's right appears on the image's left).
_HEAD_BLAZE = np.array(
    [
        [-32.0, -33.0, -26.0],
        [32.0, -33.0, -26.0],
        [0.0, 0.0, 0.0],
        [0.0, 29.0, -24.0],
        [-75.0, -15.0, -98.0],
        [75.0, -15.0, -98.0],
    ],
    dtype=np.float64,
)
# The same head at dlib's 5 points: left-of-image eye outer and inner corners... as dlib orders
# them (0, 1: one eye's outer and inner corner; 2, 3: the other eye's outer and inner; 4: the
# base of the nose).
_HEAD_DLIB5 = np.array(
    [
        [45.0, -33.0, -30.0],
        [19.0, -33.0, -27.0],
        [-45.0, -33.0, -30.0],
        [-19.0, -33.0, -27.0],
        [0.0, 10.0, -14.0],
    ],
    dtype=np.float64,
)

# The same head at RetinaFace's 5 keypoints: right eye, left eye, nose tip, right and left
# mouth corner (subject's sides; the right ones appear on the image's left).
_HEAD_RETINA = np.array(
    [
        [-32.0, -33.0, -26.0],
        [32.0, -33.0, -26.0],
        [0.0, 0.0, 0.0],
        [-25.0, 31.0, -35.0],
        [25.0, 31.0, -35.0],
    ],
    dtype=np.float64,
)
_BLAZE_NAMES = ("right_eye", "left_eye", "nose_tip", "mouth", "right_ear", "left_ear")
_RETINA_NAMES = ("right_eye", "left_eye", "nose_tip", "mouth_right", "mouth_left")
# Head models by the names of the points they are fitted to.
_HEADS: dict[tuple[str, ...], np.ndarray] = {
    _BLAZE_NAMES: _HEAD_BLAZE,
    _RETINA_NAMES: _HEAD_RETINA,
}

# The aligned face the measures are taken on: the subject's right eye centre (image left) and
# left eye centre at these chip pixels.
CHIP_SIDE = 160
CHIP_EYES = np.array([[56.0, 60.0], [104.0, 60.0]])
CHIP_IED = float(CHIP_EYES[1, 0] - CHIP_EYES[0, 0])

# Occlusion regions, as mesh indices whose convex hull is the region ("right"/"left" are the
# subject's). The eyes are the periocular area a lens or a hand covers: an ellipse around the
# eye, see `_eye_region`. The mouth is the ring around the lips (lips are not skin).
_NOSE = (168, 6, 197, 195, 5, 4, 1, 2, 98, 327, 64, 294, 48, 278, 115, 344, 220, 440, 129, 358)
_CHIN = (152, 148, 176, 149, 377, 400, 378, 18, 200, 199, 175, 83, 313, 32, 262)
_RIGHT_CHEEK = (116, 117, 118, 119, 100, 142, 203, 206, 216, 207, 187, 147, 123, 50, 101, 36, 205)
_LEFT_CHEEK = (345, 346, 347, 348, 329, 371, 423, 426, 436, 427, 411, 376, 352, 280, 330, 266, 425)
_FOREHEAD = (10, 109, 67, 103, 338, 297, 332, 151, 108, 69, 104, 337, 299, 333, 9)
OCCLUSION_REGIONS = ("left_eye", "right_eye", "nose", "mouth", "chin", "left_cheek", "right_cheek")

# A pixel is skin-like when its chromaticity (r, g) = (R, G) / (R + G + B) is within this many
# robust spreads of the face's own skin reference (and within `_SKIN_FLOOR`..`_SKIN_CAP`
# absolute), and it is not far darker than that skin (a lens, a shadowed hand).
_SKIN_SPREADS = 4.0
_SKIN_FLOOR = 0.025
_SKIN_CAP = 0.08
_DARK_RATIO = 0.35
# A broad skin prior in YCrCb (Chai and Ngan), used to pick the pixels the reference is
# estimated from, so that a mask or a hand does not become the face's "skin".
_PRIOR_CR = (133, 180)
_PRIOR_CB = (77, 135)


@dataclass
class Quality:
    """The measured components of one face, its unified score and the policy's issues.

    Ranges (see docs/quality.md): sizes in pixels; `size_ratio`, `sharpness`, `brightness`,
    `under_exposure`, `over_exposure`, `uniformity`, `dynamic_range`, `compression`,
    `incomplete` and each `occlusion` in [0, 1]; angles in degrees; `score` in [0, 100].
    """

    face_size: int  # the detector box's short side
    inter_eye_px: float  # the distance between the eye centres
    size_ratio: float  # √(box area / image area), capped at 1
    sharpness: float
    brightness: float
    under_exposure: float
    over_exposure: float
    uniformity: float
    dynamic_range: float
    compression: float
    yaw: float
    pitch: float
    roll: float
    incomplete: float
    issues: list[str] = field(default_factory=list)
    # Only when the face mesh ran (see engine/mesh.py): each eye's aspect ratio (the subject's
    # `left` and `right`), the inner-lip gap over the mouth's width, and per region the share
    # of it that does not look like the face's skin.
    eye_openness: dict[str, float] | None = None
    mouth_openness: float | None = None
    occlusion: dict[str, float] | None = None
    pose_source: str = "keypoints"  # "mesh" when yaw/pitch/roll come from the mesh fit
    score: float | None = None  # None only when the score model is not installed

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        out: dict[str, object] = {}
        if self.score is not None:
            out["score"] = round(self.score, 1)
        out.update(
            {
                "face_size": self.face_size,
                "inter_eye_px": round(self.inter_eye_px, 1),
                "size_ratio": round(self.size_ratio, 4),
                "incomplete": round(self.incomplete, 3),
                "sharpness": round(self.sharpness, 4),
                "brightness": round(self.brightness, 4),
                "under_exposure": round(self.under_exposure, 4),
                "over_exposure": round(self.over_exposure, 4),
                "uniformity": round(self.uniformity, 4),
                "dynamic_range": round(self.dynamic_range, 4),
                "compression": round(self.compression, 4),
                "yaw": round(self.yaw, 1),
                "pitch": round(self.pitch, 1),
                "roll": round(self.roll, 1),
                "pose_source": self.pose_source,
            }
        )
        if self.eye_openness is not None:
            out["eye_openness"] = {k: round(v, 3) for k, v in sorted(self.eye_openness.items())}
        if self.mouth_openness is not None:
            out["mouth_openness"] = round(self.mouth_openness, 3)
        if self.occlusion is not None:
            out["occlusion"] = {k: round(self.occlusion[k], 3) for k in OCCLUSION_REGIONS}
        out["issues"] = self.issues
        return out


# ---- the policy ------------------------------------------------------------------------------

QualityLevel = Literal["NONE", "AUTO", "LOW", "MEDIUM", "HIGH"]
LEVELS: tuple[str, ...] = get_args(QualityLevel)

# Explanations of a low score, in report order: (reason, measure, bound, limit). A component
# past its limit is reported only when the score is below the level's minimum; on its own it
# refuses nothing. `min` flags a value below the limit, `max` one above, `abs` a magnitude
# above. Each limit is where the component is worse than 99 % of the ordinary photos of LFW
# View 1 DevTrain (their 1st or 99th percentile, rounded), so a reason names what is unusual
# about this face, not what every face has.
EXPLANATIONS: tuple[tuple[str, str, str, float], ...] = (
    ("blurry", "sharpness", "min", 0.32),
    ("too_dark", "under_exposure", "max", 0.18),
    ("too_bright", "over_exposure", "max", 0.09),
    ("uneven_lighting", "uniformity", "min", 0.67),
    ("not_frontal", "yaw", "abs", 40.0),
    ("not_frontal", "pitch", "abs", 25.0),
    ("compressed", "compression", "max", 0.25),
    ("nose_occluded", "occlusion.nose", "max", 0.4),
    ("mouth_occluded", "occlusion.mouth", "max", 0.55),
    ("chin_occluded", "occlusion.chin", "max", 0.7),
    ("left_cheek_occluded", "occlusion.left_cheek", "max", 0.5),
    ("right_cheek_occluded", "occlusion.right_cheek", "max", 0.5),
)


def component(quality: Quality, measure: str) -> float | None:
    """The value of one measure by name (`occlusion.nose`, `eye_openness.left`, `yaw`...)."""
    if "." in measure:
        group, key = measure.split(".", 1)
        values = getattr(quality, group)
        return None if values is None else float(values[key])
    value = getattr(quality, measure)
    return None if value is None else float(value)


def _past(value: float, bound: str, limit: float) -> bool:
    if bound == "min":
        return value < limit
    return (abs(value) if bound == "abs" else value) > limit


@dataclass(frozen=True)
class QualityPolicy:
    """The one quality policy: detect's `issues` and the enroll gate both come from `reasons`.

    `level` is the unified score's bar (AWS QualityFilter's names): NONE refuses nothing,
    LOW/MEDIUM/HIGH are the score model's thresholds, AUTO the one chosen from the
    error-versus-discard curve. The hard limits refuse at every level but NONE. A server
    builds its policy from its settings (`FACEPLANE_QUALITY_*`), so what detect reports is
    exactly what enroll refuses; a request may ask for another level (`quality_threshold`).
    """

    level: str = "AUTO"
    min_inter_eye_px: float = 24.0
    min_size_ratio: float = 0.0
    max_incomplete: float = 0.1
    min_eye_openness: float = 0.1
    max_eye_occlusion: float = 0.6
    score_override: float | None = None  # one bar for every level but NONE (settings)

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"quality level must be one of {', '.join(LEVELS)}")

    def with_level(self, level: str | None) -> QualityPolicy:
        """The same policy at another level (None keeps this one)."""
        return self if level is None or level == self.level else replace(self, level=level)

    def min_score(self) -> float | None:
        """The score below which a face is refused at this level (None at NONE or without a
        score model)."""
        if self.level == "NONE":
            return None
        if self.score_override is not None:
            return self.score_override
        levels = level_thresholds()
        return None if levels is None else levels[self.level]

    def _hard(self, q: Quality) -> list[tuple[str, str, str, float]]:
        out = [
            ("too_small", "inter_eye_px", "min", self.min_inter_eye_px),
            ("size_ratio", "size_ratio", "min", self.min_size_ratio),
            ("incomplete", "incomplete", "max", self.max_incomplete),
        ]
        if q.eye_openness is not None:
            out += [
                ("eyes_closed", "eye_openness.right", "min", self.min_eye_openness),
                ("eyes_closed", "eye_openness.left", "min", self.min_eye_openness),
            ]
        if q.occlusion is not None:
            out += [
                ("left_eye_occluded", "occlusion.left_eye", "max", self.max_eye_occlusion),
                ("right_eye_occluded", "occlusion.right_eye", "max", self.max_eye_occlusion),
            ]
        return out

    def reasons(self, quality: Quality) -> list[dict[str, Any]]:
        """Why the face is unusable, each `{reason, measure, value, limit}`: the hard reasons,
        then (when the score is below the level's minimum) the components that explain it,
        then `low_score` itself."""
        if self.level == "NONE":
            return []
        out = []
        for reason, measure, bound, limit in self._hard(quality):
            value = component(quality, measure)
            if value is not None and _past(value, bound, limit):
                out.append(_reason(reason, measure, value, limit))
        bar = self.min_score()
        if bar is not None and quality.score is not None and quality.score < bar:
            for reason, measure, bound, limit in EXPLANATIONS:
                value = component(quality, measure)
                if value is not None and _past(value, bound, limit):
                    out.append(_reason(reason, measure, value, limit))
            out.append(_reason("low_score", "score", quality.score, bar))
        return out

    def issues(self, quality: Quality) -> list[str]:
        """The distinct reasons of `reasons`, in order: a face's `issues` in detect."""
        return list(dict.fromkeys(r["reason"] for r in self.reasons(quality)))


def _reason(reason: str, measure: str, value: float, limit: float) -> dict[str, Any]:
    return {"reason": reason, "measure": measure, "value": round(value, 3), "limit": limit}


# ---- pose ------------------------------------------------------------------------------------


def head_pose(
    points: np.ndarray, width: int, height: int, point_names: tuple[str, ...] | None = None
) -> tuple[float, float, float]:
    """Yaw, pitch, roll in degrees from a detector's keypoints (BlazeFace's 6 or RetinaFace's
    5, told apart by `point_names`) or dlib's 5 points (`point_names` None or unknown).

    Positive yaw: the subject turns to their right (the nose points to the image's left);
    positive pitch: the chin goes down (the nose points down the image); positive roll: the
    head tilts clockwise in the image. (Checked on real photos, and the same signs as
    `mesh.mesh_pose`.)
    """
    if point_names is None and len(points) == 6:
        point_names = _BLAZE_NAMES
    model = _HEADS.get(point_names or (), _HEAD_DLIB5)
    if len(model) != len(points):
        raise ValueError(f"{len(points)} points for a head model of {len(model)}")
    focal = float(max(width, height))
    camera = np.array([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1]], dtype=np.float64)
    ok, rvec, _ = cv2.solvePnP(
        model, points.astype(np.float64), camera, None, flags=cv2.SOLVEPNP_EPNP
    )
    if not ok:
        return 0.0, 0.0, 0.0
    rot, _ = cv2.Rodrigues(rvec)
    # Decompose R = Rz(roll) · Ry(yaw) · Rx(pitch) in image axes.
    yaw = float(np.degrees(np.arcsin(-np.clip(rot[2, 0], -1.0, 1.0))))
    pitch = float(np.degrees(np.arctan2(rot[2, 1], rot[2, 2])))
    roll = float(np.degrees(np.arctan2(rot[1, 0], rot[0, 0])))
    return -yaw, -pitch, roll


# ---- the measures ----------------------------------------------------------------------------


def eye_centres(
    points: np.ndarray, point_names: tuple[str, ...] | None, mesh: np.ndarray | None = None
) -> np.ndarray:
    """The subject's right and left eye centres (image pixels), from the mesh when there is
    one, else from the detector's keypoints or dlib's 5 points (eye corners)."""
    if mesh is not None:
        return np.stack([mesh[list(RIGHT_EYE), :2].mean(0), mesh[list(LEFT_EYE), :2].mean(0)])
    names = tuple(point_names or ())
    if "right_eye" in names and "left_eye" in names:
        return np.stack([points[names.index("right_eye")], points[names.index("left_eye")]])
    # dlib's 5: points 2, 3 are the subject's right eye corners, 0, 1 the left's.
    return np.stack([points[2:4].mean(0), points[0:2].mean(0)]).astype(np.float64)


def _chip_transform(eyes: np.ndarray) -> np.ndarray:
    """The 2×3 similarity map from image pixels to the chip (eye centres to `CHIP_EYES`)."""
    src, dst = eyes.astype(np.float64), CHIP_EYES
    d_src, d_dst = src[1] - src[0], dst[1] - dst[0]
    n = float(np.dot(d_src, d_src))
    if n < 1e-9:
        k, t = 1.0, 0.0
    else:
        k = (d_dst[0] * d_src[0] + d_dst[1] * d_src[1]) / n
        t = (d_dst[1] * d_src[0] - d_dst[0] * d_src[1]) / n
    rot = np.array([[k, -t], [t, k]])
    return np.column_stack([rot, dst[0] - rot @ src[0]])


def crete_sharpness(gray: np.ndarray, mask: np.ndarray) -> float:
    """1 − Crete et al.'s no-reference blur (2007) inside `mask`: how much of the image's
    gradient a further 9-tap blur takes away. About 0.5–0.7 for a sharp face at the chip's
    scale, under 0.3 for a blurred one; noise raises it less than it raises Laplacian
    variance, and JPEG's softness lowers it only as much as it blurs."""
    f = gray.astype(np.float32)
    keep = mask > 0
    if keep.sum() < 16:
        return 0.0
    blurs = []
    for axis in (0, 1):
        b = cv2.blur(f, (1, 9) if axis == 0 else (9, 1))  # ksize is (width, height)
        d_f = np.abs(np.diff(f, axis=axis))
        d_b = np.abs(np.diff(b, axis=axis))
        m = keep[1:, :] & keep[:-1, :] if axis == 0 else keep[:, 1:] & keep[:, :-1]
        s_f = float(d_f[m].sum())
        s_v = float(np.maximum(d_f - d_b, 0)[m].sum())
        blurs.append((s_f - s_v) / s_f if s_f > 0 else 1.0)
    return float(np.clip(1.0 - max(blurs), 0.0, 1.0))


def blockiness(gray: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """JPEG block artefacts in `box` of the original image (its own 8×8 grid): how much
    larger the steps across block edges are than those inside blocks, as 1 − inside/edge
    (0: none; above 0.5 heavy). Only the image as it came is on the grid, so it is taken
    before any resampling."""
    x1, y1, x2, y2 = box
    f = gray.astype(np.float32)
    scores = []
    for axis in (0, 1):
        steps = np.abs(np.diff(f, axis=axis))
        lo, hi = (y1, y2) if axis == 0 else (x1, x2)
        idx = np.arange(max(lo, 0), min(hi, steps.shape[axis]) - 1)
        if len(idx) < 16:
            return 0.0
        cut = steps[idx, max(x1, 0) : x2] if axis == 0 else steps[max(y1, 0) : y2, idx].T
        per_line = cut.mean(axis=1)
        edge = (idx % 8) == 7
        if edge.sum() == 0 or (~edge).sum() == 0:
            return 0.0
        inside, at_edge = float(per_line[~edge].mean()), float(per_line[edge].mean())
        scores.append(0.0 if at_edge <= 1e-6 else max(0.0, 1.0 - inside / at_edge))
    return float(np.clip(min(scores), 0.0, 1.0))


def _hull_mask(pts: np.ndarray, shape: tuple[int, int], scale: float = 1.0) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    centre = pts.mean(0)
    hull = cv2.convexHull(np.round(centre + (pts - centre) * scale).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 255)
    return mask


def _poly_mask(pts: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 255)
    return mask


def _eye_region(
    mesh: np.ndarray, eye: tuple[int, ...], brow: tuple[int, ...], shape: tuple[int, int]
) -> np.ndarray:
    """The periocular area of one eye in the chip: an ellipse 0.9 × 0.6 inter-eye distances
    around the eye centre, without the eye itself and the eyebrow (not skin either)."""
    mask = np.zeros(shape, np.uint8)
    c = mesh[list(eye)].mean(0)
    cv2.ellipse(
        mask,
        (round(c[0]), round(c[1])),
        (int(0.45 * CHIP_IED), int(0.3 * CHIP_IED)),
        0,
        0,
        360,
        255,
        -1,
    )
    mask &= ~_hull_mask(mesh[list(eye)], shape, 1.15)
    mask &= ~_hull_mask(mesh[list(brow)], shape, 1.2)
    return mask


def _regions(mesh: np.ndarray, shape: tuple[int, int]) -> dict[str, np.ndarray]:
    lips = _hull_mask(mesh[list(OUTER_LIPS)], shape)
    return {
        "left_eye": _eye_region(mesh, LEFT_EYE, LEFT_EYEBROW, shape),
        "right_eye": _eye_region(mesh, RIGHT_EYE, RIGHT_EYEBROW, shape),
        "nose": _hull_mask(mesh[list(_NOSE)], shape),
        "mouth": _hull_mask(mesh[list(OUTER_LIPS)], shape, 1.5) & ~lips,
        "chin": _hull_mask(mesh[list(_CHIN)], shape, 0.85) & ~lips,
        "left_cheek": _hull_mask(mesh[list(_LEFT_CHEEK)], shape, 0.9),
        "right_cheek": _hull_mask(mesh[list(_RIGHT_CHEEK)], shape, 0.9),
        "forehead": _hull_mask(mesh[list(_FOREHEAD)], shape, 0.9),
    }


def _occlusion(
    chip: np.ndarray, gray: np.ndarray, regions: dict[str, np.ndarray]
) -> dict[str, float]:
    """Per region, the share of pixels that do not look like the face's own skin."""
    f = chip.astype(np.float32)
    total = f.sum(2) + 1e-3
    chroma = np.stack([f[..., 0] / total, f[..., 1] / total], -1)
    luma = gray.astype(np.float32)
    ycc = cv2.cvtColor(chip, cv2.COLOR_RGB2YCrCb)
    prior = (
        (ycc[..., 1] >= _PRIOR_CR[0]) & (ycc[..., 1] <= _PRIOR_CR[1])
        & (ycc[..., 2] >= _PRIOR_CB[0]) & (ycc[..., 2] <= _PRIOR_CB[1])
        & (luma > 30)
    )  # fmt: skip
    skin_area = np.zeros(chip.shape[:2], bool)
    for name in ("forehead", "nose", "left_cheek", "right_cheek", "chin"):
        skin_area |= regions[name] > 0
    ref_px = skin_area & prior
    if ref_px.sum() < 0.1 * max(int(skin_area.sum()), 1):
        ref_px = regions["forehead"] > 0  # a grey picture or an odd light: trust the forehead
    if ref_px.sum() < 8:
        return dict.fromkeys(OCCLUSION_REGIONS, 0.0)
    ref = np.median(chroma[ref_px], axis=0)
    dist = np.linalg.norm(chroma - ref, axis=-1)
    spread = float(np.median(dist[ref_px]))
    tol = min(max(_SKIN_SPREADS * spread, _SKIN_FLOOR), _SKIN_CAP)
    y_ref = float(np.median(luma[ref_px]))
    foreign = (dist > tol) | (luma < _DARK_RATIO * y_ref)
    out = {}
    for name in OCCLUSION_REGIONS:
        m = regions[name] > 0
        out[name] = float(foreign[m].mean()) if m.any() else 0.0
    return out


def _seen(to_chip: np.ndarray, width: int, height: int) -> np.ndarray:
    """A uint8 mask (255) of the chip pixels that come from inside the image."""
    inv = cv2.invertAffineTransform(to_chip)
    ys, xs = np.mgrid[0:CHIP_SIDE, 0:CHIP_SIDE].astype(np.float64)
    u = inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2]
    v = inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2]
    inside = (u >= 0) & (u <= width - 1) & (v >= 0) & (v <= height - 1)
    return np.where(inside, 255, 0).astype(np.uint8)


def _outside(points: np.ndarray, width: int, height: int) -> float:
    inside = (
        (points[:, 0] >= 0) & (points[:, 0] < width) & (points[:, 1] >= 0) & (points[:, 1] < height)
    )
    return float(1.0 - inside.mean())


def measure_quality(
    rgb: np.ndarray,
    box: tuple[float, float, float, float],
    points: np.ndarray,
    policy: QualityPolicy,
    point_names: tuple[str, ...] | None = None,
    mesh: np.ndarray | None = None,
    canonical: CanonicalFace | None = None,
) -> Quality:
    """Measure one face's components and unified score, and `policy`'s issues.

    `points` are the detector's keypoints (named by `point_names`) or dlib's 5 points; with a
    face `mesh` (468 points) the regions, openness and occlusion come from it, and so does the
    pose when the `canonical` face is there to fit.
    """
    h_img, w_img = rgb.shape[:2]
    x, y, w, h = box
    eyes = eye_centres(points, point_names, mesh)
    ied = float(np.linalg.norm(eyes[1] - eyes[0]))
    to_chip = _chip_transform(eyes)
    chip = cv2.warpAffine(
        rgb,
        to_chip,
        (CHIP_SIDE, CHIP_SIDE),
        flags=cv2.INTER_AREA if ied > CHIP_IED else cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    gray = cv2.cvtColor(chip, cv2.COLOR_RGB2GRAY)
    shape = (CHIP_SIDE, CHIP_SIDE)
    regions: dict[str, np.ndarray] | None = None
    if mesh is not None:
        m2 = mesh[:, :2] @ to_chip[:, :2].T + to_chip[:, 2]
        face = _poly_mask(m2[list(FACE_OVAL)], shape)
        regions = _regions(m2, shape)
        skin = face.copy()
        for ring in (RIGHT_EYE, LEFT_EYE, RIGHT_EYEBROW, LEFT_EYEBROW, OUTER_LIPS):
            skin &= ~_hull_mask(m2[list(ring)], shape, 1.2)
        incomplete = _outside(mesh, w_img, h_img)
    else:
        face = np.zeros(shape, np.uint8)
        cv2.ellipse(face, (80, 80), (52, 70), 0, 0, 360, 255, -1)
        skin = face
        corners = np.array([[x, y], [x + w, y], [x, y + h], [x + w, y + h]])
        grid = np.stack(np.meshgrid(np.linspace(x, x + w, 9), np.linspace(y, y + h, 9)), -1)
        incomplete = _outside(np.concatenate([corners, grid.reshape(-1, 2)]), w_img, h_img)
    # Outside the image the chip repeats the edge: measure only what the camera saw.
    seen = _seen(to_chip, w_img, h_img)
    face &= seen
    skin &= seen
    if skin.sum() == 0:
        skin = face
    lum = gray[skin > 0].astype(np.float32) if skin.any() else np.zeros(1, np.float32)
    brightness = float(lum.mean()) / 255.0
    under = float((lum < 40).mean())
    over = float((lum > 235).mean())
    halves = [skin.copy(), skin.copy()]
    halves[0][:, CHIP_SIDE // 2 :] = 0
    halves[1][:, : CHIP_SIDE // 2] = 0
    means = [float(gray[m > 0].mean()) if m.any() else 0.0 for m in halves]
    uniformity = 1.0 - abs(means[0] - means[1]) / max(means[0] + means[1], 1e-6)
    face_px = gray[face > 0] if face.any() else gray.ravel()
    hist = np.bincount(face_px.ravel(), minlength=256).astype(np.float64)
    p = hist[hist > 0] / hist.sum()
    dynamic_range = float(-(p * np.log2(p)).sum() / 8.0)
    sharp_mask = cv2.erode(face, np.ones((5, 5), np.uint8))
    sharpness = crete_sharpness(gray, sharp_mask)
    # Only the box, cut on the image's own 8-pixel grid so its JPEG blocks stay in phase.
    gx, gy = max(int(x), 0) // 8 * 8, max(int(y), 0) // 8 * 8
    box_rgb = rgb[gy : max(int(y + h), gy), gx : max(int(x + w), gx)]
    compression = 0.0
    if box_rgb.size:  # a box wholly outside the image has nothing to measure
        box_gray = cv2.cvtColor(box_rgb, cv2.COLOR_RGB2GRAY)
        box = (int(x) - gx, int(y) - gy, int(x + w) - gx, int(y + h) - gy)
        compression = blockiness(box_gray, box)
    if mesh is not None and canonical is not None:
        yaw, pitch, roll = mesh_pose(mesh, canonical)
        source = "mesh"
    else:
        yaw, pitch, roll = head_pose(points, w_img, h_img, point_names)
        source = "keypoints"
    quality = Quality(
        face_size=round(min(w, h)),
        inter_eye_px=ied,
        size_ratio=min(1.0, float(np.sqrt(max(w * h, 0.0) / max(w_img * h_img, 1)))),
        sharpness=sharpness,
        brightness=brightness,
        under_exposure=under,
        over_exposure=over,
        uniformity=float(uniformity),
        dynamic_range=dynamic_range,
        compression=compression,
        yaw=yaw,
        pitch=pitch,
        roll=roll,
        incomplete=incomplete,
        pose_source=source,
    )
    if mesh is not None and regions is not None:
        quality.eye_openness = eye_openness(mesh)
        quality.mouth_openness = mouth_openness(mesh)
        quality.occlusion = _occlusion(chip, gray, {k: v & seen for k, v in regions.items()})
    quality.score = unified_score(quality)
    quality.issues = policy.issues(quality)
    return quality
