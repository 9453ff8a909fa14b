"""Face quality: size, sharpness, brightness, head pose, and the reasons a face is unusable."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

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


@dataclass(frozen=True)
class QualityPolicy:
    """Thresholds below which a face is reported unusable, with the reason."""

    min_face_px: int = 40
    min_sharpness: float = 0.25
    min_brightness: float = 0.2
    max_brightness: float = 0.9
    max_yaw_deg: float = 35.0
    max_pitch_deg: float = 30.0


@dataclass
class Quality:
    """Measured quality of one face."""

    face_size: int
    sharpness: float
    brightness: float
    yaw: float
    pitch: float
    roll: float
    issues: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "face_size": self.face_size,
            "sharpness": round(self.sharpness, 4),
            "brightness": round(self.brightness, 4),
            "yaw": round(self.yaw, 1),
            "pitch": round(self.pitch, 1),
            "roll": round(self.roll, 1),
            "issues": self.issues,
        }


def head_pose(points: np.ndarray, width: int, height: int) -> tuple[float, float, float]:
    """Yaw, pitch, roll in degrees from BlazeFace keypoints (6) or dlib's 5 points.

    Positive yaw: the face turns towards the image's right; positive pitch: chin up;
    positive roll: the head tilts clockwise in the image.
    """
    model = _HEAD_BLAZE if len(points) == 6 else _HEAD_DLIB5
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
) -> Quality:
    """Measure one face: its size, Laplacian sharpness, brightness and pose."""
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
    yaw, pitch, roll = head_pose(points, rgb.shape[1], rgb.shape[0])
    size = round(min(w, h))
    issues = []
    if size < policy.min_face_px:
        issues.append("too_small")
    if sharpness < policy.min_sharpness:
        issues.append("blurry")
    if brightness < policy.min_brightness:
        issues.append("too_dark")
    elif brightness > policy.max_brightness:
        issues.append("too_bright")
    if abs(yaw) > policy.max_yaw_deg or abs(pitch) > policy.max_pitch_deg:
        issues.append("not_frontal")
    return Quality(size, sharpness, brightness, yaw, pitch, roll, issues)
