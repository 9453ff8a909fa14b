"""Face quality: size, sharpness, brightness, head pose, and the reasons a face is unusable."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from faceplane.engine.mesh import CanonicalFace, eye_openness, mesh_pose, mouth_openness

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
# Head models by the names of the points they are fitted to.
_HEADS: dict[tuple[str, ...], np.ndarray] = {
    ("right_eye", "left_eye", "nose_tip", "mouth", "right_ear", "left_ear"): _HEAD_BLAZE,
    ("right_eye", "left_eye", "nose_tip", "mouth_right", "mouth_left"): _HEAD_RETINA,
}


@dataclass
class Quality:
    """Measured quality of one face, and the issues the policy it was measured under found."""

    face_size: int
    sharpness: float
    brightness: float
    yaw: float
    pitch: float
    roll: float
    issues: list[str] = field(default_factory=list)
    # Only when the face mesh ran (see engine/mesh.py): each eye's aspect ratio (the subject's
    # `left` and `right`) and the inner-lip gap over the mouth's width.
    eye_openness: dict[str, float] | None = None
    mouth_openness: float | None = None
    pose_source: str = "keypoints"  # "mesh" when yaw/pitch/roll come from the mesh fit

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        out: dict[str, object] = {
            "face_size": self.face_size,
            "sharpness": round(self.sharpness, 4),
            "brightness": round(self.brightness, 4),
            "yaw": round(self.yaw, 1),
            "pitch": round(self.pitch, 1),
            "roll": round(self.roll, 1),
        }
        if self.eye_openness is not None:
            out["eye_openness"] = {k: round(v, 3) for k, v in sorted(self.eye_openness.items())}
        if self.mouth_openness is not None:
            out["mouth_openness"] = round(self.mouth_openness, 3)
        out["issues"] = self.issues
        return out


# The policy's checks, in report order: (reason, measure, bound, limit field). `min` refuses a
# value below the limit, `max` one above it, `abs` one whose magnitude is above it.
_CHECKS = (
    ("too_small", "face_size", "min", "min_face_px"),
    ("blurry", "sharpness", "min", "min_sharpness"),
    ("too_dark", "brightness", "min", "min_brightness"),
    ("too_bright", "brightness", "max", "max_brightness"),
    ("not_frontal", "yaw", "abs", "max_yaw_deg"),
    ("not_frontal", "pitch", "abs", "max_pitch_deg"),
)


@dataclass(frozen=True)
class QualityPolicy:
    """The one quality policy: detect's `issues` and the enroll gate both come from `reasons`.

    The defaults are the settings' defaults (`FACEPLANE_QUALITY_*`); a server builds its policy
    from its settings, so what detect reports is exactly what enroll refuses.
    """

    min_face_px: int = 60
    min_sharpness: float = 0.25
    min_brightness: float = 0.2
    max_brightness: float = 0.9
    max_yaw_deg: float = 35.0
    max_pitch_deg: float = 35.0

    def reasons(self, quality: Quality) -> list[dict[str, Any]]:
        """Why the face is unusable, each `{reason, measure, value, limit}`, in report order."""
        out = []
        for reason, measure, bound, limit_name in _CHECKS:
            value = float(getattr(quality, measure))
            limit = getattr(self, limit_name)
            size = abs(value) if bound == "abs" else value
            if size < limit if bound == "min" else size > limit:
                out.append(
                    {"reason": reason, "measure": measure, "value": round(value, 3), "limit": limit}
                )
        return out

    def issues(self, quality: Quality) -> list[str]:
        """The distinct reasons of `reasons`, in order: a face's `issues` in detect."""
        return list(dict.fromkeys(r["reason"] for r in self.reasons(quality)))


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
        point_names = ("right_eye", "left_eye", "nose_tip", "mouth", "right_ear", "left_ear")
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


def measure_quality(
    rgb: np.ndarray,
    box: tuple[float, float, float, float],
    points: np.ndarray,
    policy: QualityPolicy,
    point_names: tuple[str, ...] | None = None,
    mesh: np.ndarray | None = None,
    canonical: CanonicalFace | None = None,
) -> Quality:
    """Measure one face (size, Laplacian sharpness, brightness, pose) and `policy`'s issues.

    With a face `mesh` (468 points), eye and mouth openness come from it, and so does the pose
    when the `canonical` face is there to fit; otherwise the pose comes from `points`.
    """
    x, y, w, h = box
    x1, y1 = max(int(x), 0), max(int(y), 0)
    x2, y2 = min(int(x + w), rgb.shape[1]), min(int(y + h), rgb.shape[0])
    crop = rgb[y1:y2, x1:x2]
    gray = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY) if crop.size else np.zeros((8, 8), np.uint8)
    # Sharpness is judged at a fixed scale, so that a big blurry face is not called sharp.
    norm = cv2.resize(gray, (112, 112), interpolation=cv2.INTER_AREA)
    lap_var = float(cv2.Laplacian(norm, cv2.CV_64F).var())
    sharpness = lap_var / (lap_var + 100.0)
    brightness = float(norm.mean()) / 255.0
    if mesh is not None and canonical is not None:
        yaw, pitch, roll = mesh_pose(mesh, canonical)
        source = "mesh"
    else:
        yaw, pitch, roll = head_pose(points, rgb.shape[1], rgb.shape[0], point_names)
        source = "keypoints"
    quality = Quality(round(min(w, h)), sharpness, brightness, yaw, pitch, roll)
    quality.pose_source = source
    if mesh is not None:
        quality.eye_openness = eye_openness(mesh)
        quality.mouth_openness = mouth_openness(mesh)
    quality.issues = policy.issues(quality)
    return quality
