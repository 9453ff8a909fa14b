"""The MediaPipe face mesh: 468 points per face, the canonical 3D face, pose, openness, regions.

The landmark model (`face_landmark.tflite`) takes a 192×192 RGB crop in [0, 1] of an upright
face: a square around the detector's box, 1.5 times its long side, rotated so that the line
through the eyes is horizontal (as MediaPipe's own graph builds it). It answers 468 points
(x, y in crop pixels, z a relative depth on the scale of x, smaller is nearer the camera) and
one logit whose sigmoid is the face-presence score. Points are mapped back to image pixels, z
scaled with x.

The canonical face (`geometry_pipeline_metadata_landmarks.binarypb`, MediaPipe's
GeometryPipelineMetadata protobuf) gives the same 468 vertices of an average face in
centimetres, and the weights of the points used for a Procrustes fit. Head pose is the
rotation of a weighted similarity fit of that face to the mesh (a weak-perspective camera).
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

MESH_INPUT = 192
MESH_POINTS = 468
ROI_SCALE = 1.5  # MediaPipe's detection-to-ROI enlargement

# Index lists of the mesh topology (MediaPipe's face_mesh_connections, as closed rings in
# image order). "right"/"left" are the SUBJECT's, as everywhere in Faceplane: the subject's
# right eye appears on the image's left.
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378,
             400, 377, 152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54,
             103, 67, 109)  # fmt: skip
RIGHT_EYE = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246)
LEFT_EYE = (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466)
RIGHT_EYEBROW = (70, 63, 105, 66, 107, 55, 65, 52, 53, 46)
LEFT_EYEBROW = (300, 293, 334, 296, 336, 285, 295, 282, 283, 276)
OUTER_LIPS = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37,
              39, 40, 185)  # fmt: skip
INNER_LIPS = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312, 13, 82,
              81, 80, 191)  # fmt: skip
REGIONS: dict[str, tuple[int, ...]] = {
    "face_oval": FACE_OVAL,
    "right_eye": RIGHT_EYE,
    "left_eye": LEFT_EYE,
    "right_eyebrow": RIGHT_EYEBROW,
    "left_eyebrow": LEFT_EYEBROW,
    "lips": OUTER_LIPS,
    "mouth_inner": INNER_LIPS,
}

# Eye aspect ratio points per eye: the two corners (outer, inner) and two upper/lower lid pairs.
_EAR = {
    "right": (33, 133, ((160, 144), (158, 153))),
    "left": (263, 362, ((387, 373), (385, 380))),
}
# Mouth: the inner-lip midpoints (upper, lower) and the mouth corners.
_MOUTH_GAP = (13, 14)
_MOUTH_CORNERS = (61, 291)


# ---- the canonical face: a protobuf wire-format reader -------------------------------------


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= len(buf):
            raise ValueError("truncated varint")
        byte = buf[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, i
        if shift > 63:
            raise ValueError("varint too long")


def proto_fields(buf: bytes) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value) of each field of one message, in order.

    Values: int for varints (0), bytes for length-delimited (2), the raw 4 or 8 bytes for
    fixed32 (5) and fixed64 (1).
    """
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        value: Any
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 2:
            size, i = _varint(buf, i)
            if i + size > len(buf):
                raise ValueError("truncated field")
            value, i = buf[i : i + size], i + size
        elif wire == 5:
            value, i = buf[i : i + 4], i + 4
        elif wire == 1:
            value, i = buf[i : i + 8], i + 8
        else:
            raise ValueError(f"unsupported wire type {wire}")
        if i > len(buf):
            raise ValueError("truncated field")
        yield number, wire, value


def _floats(wire: int, value: Any) -> list[float]:
    """A repeated float field's values, packed (2) or one unpacked fixed32 (5)."""
    if wire == 5:
        return [struct.unpack("<f", value)[0]]
    if wire == 2:
        if len(value) % 4:
            raise ValueError("a packed float field is not a whole number of floats")
        return list(struct.unpack(f"<{len(value) // 4}f", value))
    raise ValueError(f"a float field has wire type {wire}")


def _uints(wire: int, value: Any) -> list[int]:
    """A repeated uint32 field's values, packed (2) or one unpacked varint (0)."""
    if wire == 0:
        return [int(value)]
    if wire == 2:
        out, i = [], 0
        while i < len(value):
            v, i = _varint(value, i)
            out.append(v)
        return out
    raise ValueError(f"a uint32 field has wire type {wire}")


@dataclass(frozen=True)
class CanonicalFace:
    """MediaPipe's canonical face: 468 vertices (cm; x right, y up, z towards the viewer),
    texture coordinates, triangles, and the weighted points of the Procrustes fit."""

    vertices: np.ndarray  # (468, 3)
    uv: np.ndarray  # (468, 2)
    triangles: np.ndarray  # (T, 3)
    basis_ids: np.ndarray  # (K,)
    basis_weights: np.ndarray  # (K,)


def parse_geometry(buf: bytes) -> CanonicalFace:
    """Read GeometryPipelineMetadata: canonical_mesh = 1 (Mesh3d), procrustes_landmark_basis
    = 2 (repeated {landmark_id = 1, weight = 2}), input_source = 3. Mesh3d: vertex_type = 1,
    primitive_type = 2, vertex_buffer = 3 (floats, 5 per vertex: x y z u v), index_buffer = 4."""
    vertex_buffer: list[float] = []
    index_buffer: list[int] = []
    ids: list[int] = []
    weights: list[float] = []
    for number, wire, value in proto_fields(buf):
        if number == 1 and wire == 2:
            for n, w, v in proto_fields(value):
                if n == 3:
                    vertex_buffer += _floats(w, v)
                elif n == 4:
                    index_buffer += _uints(w, v)
        elif number == 2 and wire == 2:
            landmark, weight = 0, 0.0
            for n, w, v in proto_fields(value):
                if n == 1 and w == 0:
                    landmark = int(v)
                elif n == 2:
                    weight = _floats(w, v)[0]
            ids.append(landmark)
            weights.append(weight)
    if not vertex_buffer or len(vertex_buffer) % 5 or len(index_buffer) % 3:
        raise ValueError("not a face geometry: no mesh or a ragged vertex or index buffer")
    verts = np.asarray(vertex_buffer, dtype=np.float64).reshape(-1, 5)
    tris = np.asarray(index_buffer, dtype=np.int64).reshape(-1, 3)
    if tris.size and tris.max() >= len(verts):
        raise ValueError("a triangle index is outside the vertex buffer")
    return CanonicalFace(
        verts[:, :3].copy(),
        verts[:, 3:].copy(),
        tris,
        np.asarray(ids, dtype=np.int64),
        np.asarray(weights, dtype=np.float64),
    )


def load_geometry(path: Path) -> CanonicalFace:
    """The canonical face from the installed `.binarypb`."""
    return parse_geometry(path.read_bytes())


# ---- running the landmark model ------------------------------------------------------------


@dataclass
class FaceMesh:
    """One face's mesh: (468, 3) points (x, y in image pixels, z relative depth on the scale of
    x, smaller nearer), the model's face-presence score, and the crop it was read from."""

    points: np.ndarray
    presence: float
    roi: tuple[float, float, float, float]  # centre x, centre y, side, angle (radians)


def face_roi(
    box: tuple[float, float, float, float], right_eye: np.ndarray, left_eye: np.ndarray
) -> tuple[float, float, float, float]:
    """The mesh's crop: centre (box centre), side (1.5 × the long side) and the angle of the
    subject's right-to-left eye line (the image's left eye to its right one)."""
    x, y, w, h = box
    angle = float(np.arctan2(left_eye[1] - right_eye[1], left_eye[0] - right_eye[0]))
    return x + w / 2, y + h / 2, max(w, h) * ROI_SCALE, angle


def _crop_to_image(roi: tuple[float, float, float, float]) -> np.ndarray:
    """The 2×3 affine map from crop pixels (192 px side) to image pixels."""
    cx, cy, side, angle = roi
    s = side / MESH_INPUT
    c, n = np.cos(angle) * s, np.sin(angle) * s
    half = MESH_INPUT / 2
    return np.array(
        [[c, -n, cx - c * half + n * half], [n, c, cy - n * half - c * half]], dtype=np.float64
    )


class FaceMesher:
    """The 468-point landmark model, run by LiteRT (one interpreter per thread)."""

    name = "mediapipe_face_mesh"

    def __init__(self, make_interpreter: Callable[[], Any]) -> None:
        self._make = make_interpreter
        self._local = threading.local()

    def _interpreter(self) -> tuple[Any, int, int, int]:
        cached = getattr(self._local, "it", None)
        if cached is None:
            it = self._make()
            it.allocate_tensors()
            outs = it.get_output_details()
            pts = next(o["index"] for o in outs if o["shape"][-1] == MESH_POINTS * 3)
            flag = next(o["index"] for o in outs if o["shape"][-1] == 1)
            cached = (it, it.get_input_details()[0]["index"], pts, flag)
            self._local.it = cached
        return cached

    def crop(self, rgb: np.ndarray, roi: tuple[float, float, float, float]) -> np.ndarray:
        """The upright 192×192 crop of `roi` (black outside the image)."""
        to_image = _crop_to_image(roi)
        return cv2.warpAffine(
            rgb,
            to_image,
            (MESH_INPUT, MESH_INPUT),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_CONSTANT,
        )

    def run_crop(self, crop: np.ndarray) -> tuple[np.ndarray, float]:
        """Raw points (468, 3) in crop pixels and the presence score of one 192×192 crop."""
        it, inp, pts_i, flag_i = self._interpreter()
        it.set_tensor(inp, (crop.astype(np.float32) / 255.0)[None])
        it.invoke()
        raw = it.get_tensor(pts_i).reshape(MESH_POINTS, 3).astype(np.float64)
        logit = float(it.get_tensor(flag_i).ravel()[0])
        return raw, float(1.0 / (1.0 + np.exp(-np.clip(logit, -100.0, 100.0))))

    def run(self, rgb: np.ndarray, roi: tuple[float, float, float, float]) -> FaceMesh:
        """The mesh of the face in `roi`, in image pixels."""
        raw, presence = self.run_crop(self.crop(rgb, roi))
        to_image = _crop_to_image(roi)
        xy = raw[:, :2] @ to_image[:, :2].T + to_image[:, 2]
        z = raw[:, 2] * (roi[2] / MESH_INPUT)
        return FaceMesh(np.column_stack([xy, z]), presence, roi)


# ---- what the mesh tells ---------------------------------------------------------------------


def fit_similarity(
    src: np.ndarray, dst: np.ndarray, weights: np.ndarray
) -> tuple[float, np.ndarray, np.ndarray]:
    """Weighted similarity (Umeyama): scale, rotation, translation with dst ≈ s·R·src + t."""
    w = weights / weights.sum()
    mu_s, mu_d = w @ src, w @ dst
    a, b = src - mu_s, dst - mu_d
    cov = (b * w[:, None]).T @ a
    u, sing, vt = np.linalg.svd(cov)
    d = np.ones(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[2] = -1.0
    rot = u @ np.diag(d) @ vt
    var_s = float((w * (a**2).sum(1)).sum())
    scale = float((sing * d).sum() / var_s) if var_s > 0 else 1.0
    return scale, rot, mu_d - scale * rot @ mu_s


# The canonical face in image axes (x right, y down, z away from the camera, as the mesh's z).
_TO_IMAGE_AXES = np.diag([1.0, -1.0, -1.0])


def mesh_pose(points: np.ndarray, face: CanonicalFace) -> tuple[float, float, float]:
    """Yaw, pitch, roll in degrees of the canonical face fitted to a mesh (weak perspective).

    The signs are `quality.head_pose`'s: positive yaw, the subject turns to their right (the
    nose points to the image's left); positive pitch, the chin goes down (the nose points down
    the image); positive roll, the head tilts clockwise in the image.
    """
    ids = face.basis_ids
    src = face.vertices[ids] @ _TO_IMAGE_AXES
    _, rot, _ = fit_similarity(src, points[ids].astype(np.float64), face.basis_weights)
    # R = Rz(roll) · Ry(yaw) · Rx(pitch) in image axes (y down, z away from the camera).
    yaw = float(np.degrees(np.arcsin(-np.clip(rot[2, 0], -1.0, 1.0))))
    pitch = float(np.degrees(np.arctan2(rot[2, 1], rot[2, 2])))
    roll = float(np.degrees(np.arctan2(rot[1, 0], rot[0, 0])))
    return yaw, pitch, roll


def eye_openness(points: np.ndarray) -> dict[str, float]:
    """Each eye's aspect ratio: the mean of two lid-to-lid gaps over the corner-to-corner
    width, in the image plane (about 0.25–0.35 open, under 0.1 shut)."""
    out = {}
    for side, (outer, inner, lids) in _EAR.items():
        width = float(np.linalg.norm(points[outer, :2] - points[inner, :2]))
        gaps = [float(np.linalg.norm(points[a, :2] - points[b, :2])) for a, b in lids]
        out[side] = sum(gaps) / (len(gaps) * width) if width > 0 else 0.0
    return out


def mouth_openness(points: np.ndarray) -> float:
    """The inner-lip gap (upper to lower inner lip midpoint) over the mouth's width (corner to
    corner): 0 shut, about 0.3 and more wide open."""
    gap = float(np.linalg.norm(points[_MOUTH_GAP[0], :2] - points[_MOUTH_GAP[1], :2]))
    width = float(np.linalg.norm(points[_MOUTH_CORNERS[0], :2] - points[_MOUTH_CORNERS[1], :2]))
    return gap / width if width > 0 else 0.0


def face_contour(points: np.ndarray) -> np.ndarray:
    """The face oval as a closed polygon, (36, 2) image pixels."""
    return np.asarray(points[list(FACE_OVAL), :2], dtype=np.float64)


def region_polygons(
    points: np.ndarray, regions: tuple[str, ...] | None = None
) -> dict[str, np.ndarray]:
    """Polygons (N, 2) in image pixels of the named regions (all of `REGIONS` by default)."""
    names = regions if regions is not None else tuple(REGIONS)
    return {name: np.asarray(points[list(REGIONS[name]), :2], np.float64) for name in names}


def region_mask(
    points: np.ndarray, size: tuple[int, int], regions: tuple[str, ...] = ("face_oval",)
) -> np.ndarray:
    """A uint8 mask (255 inside) of size (width, height) covering the union of `regions`;
    `lips` is the ring between the outer and the inner lip line."""
    width, height = size
    mask = np.zeros((height, width), dtype=np.uint8)
    for name, poly in region_polygons(points, regions).items():
        part = np.zeros_like(mask)
        cv2.fillPoly(part, [np.round(poly).astype(np.int32)], 255)
        if name == "lips":
            inner = np.round(points[list(INNER_LIPS), :2]).astype(np.int32)
            cv2.fillPoly(part, [inner], 0)
        mask |= part
    return mask
