"""Face embedders and embedding spaces.

Embedders: dlib's ResNet (128-d, 150×150 chips) run by dlib or on ONNX, and MobileFaceNet
(192-d, ArcFace-aligned 112×112 chips) on LiteRT. A space (registry.SPACES) is one embedder's
unit vectors, or a fusion: the concatenation [√w1·v1, √w2·v2, …] of its parts' unit vectors
with weights summing to 1. That concatenation is a unit vector, and the cosine of two of them is
w1·cos1 + w2·cos2 + …, the weighted-sum score fusion: vector indexes work on it unchanged.
A space's vector holds each part's vector, so it can be projected onto a space made of some of
its parts (a fused probe searches a collection of the dlib space by its dlib part).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np


class Embedder(Protocol):
    """Turns aligned RGB face chips into raw descriptors (dlib: 150×150 → 128-d)."""

    name: str

    def embed(self, chips: np.ndarray) -> np.ndarray:
        """Return a (N, D) float32 array for a (N, S, S, 3) uint8 RGB batch."""
        ...


class DlibEmbedder:
    """The reference: dlib's own forward pass (slow here: dlib-bin has no BLAS)."""

    name = "dlib_resnet"

    def __init__(self, model: Any) -> None:
        self._model = model
        # dlib's network keeps its activations on the object: one forward pass at a time.
        self._lock = threading.Lock()

    def embed(self, chips: np.ndarray) -> np.ndarray:
        """Run dlib's batch descriptor on the chips."""
        if len(chips) == 0:
            return np.zeros((0, 128), dtype=np.float32)
        with self._lock:
            out = self._model.compute_face_descriptor([np.ascontiguousarray(c) for c in chips])
        return np.asarray([np.asarray(d) for d in out], dtype=np.float32)


class OnnxEmbedder:
    """dlib's ResNet converted to ONNX by faceplane and run by onnxruntime."""

    name = "dlib_resnet_onnx"

    def __init__(self, session: Any) -> None:
        self._session = session  # onnxruntime sessions are safe to call from several threads
        self._input = session.get_inputs()[0].name

    def embed(self, chips: np.ndarray) -> np.ndarray:
        """Run the whole batch in one session call."""
        if len(chips) == 0:
            return np.zeros((0, 128), dtype=np.float32)
        out = self._session.run(None, {self._input: chips.astype(np.float32)})[0]
        return np.asarray(out, dtype=np.float32)


# ---- MobileFaceNet (192-d), on ArcFace-aligned 112×112 chips ---------------------------------

MFN_SIZE = 112
MFN_DIM = 192
# The standard 112×112 ArcFace template (insightface): the five points in image order, left to
# right — the subject's right eye, left eye, nose tip, right mouth corner, left mouth corner
# (RetinaFace's keypoint order).
ARCFACE_TEMPLATE = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2×3 least-squares similarity (rotation, uniform scale, shift) taking `src` to `dst`.

    Umeyama's closed form for points (N, 2); no reflection.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1.0
    rot = u @ sign @ vt
    var_s = float((s**2).sum() / len(src))
    scale = float(np.trace(np.diag(sig) @ sign)) / max(var_s, 1e-12)
    m = np.empty((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - scale * rot @ mu_s
    return m


def arcface_chip(rgb: np.ndarray, points5: np.ndarray) -> np.ndarray:
    """The 112×112 RGB chip aligned to the ArcFace template from five points in
    RetinaFace order (see ARCFACE_TEMPLATE)."""
    import cv2

    m = similarity_transform(points5, ARCFACE_TEMPLATE)
    return cv2.warpAffine(
        rgb, m, (MFN_SIZE, MFN_SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
    )


class MobileFaceNetEmbedder:
    """MobileFaceNet (192-d) run by LiteRT; its graph has a fixed batch of 2.

    Input (2, 112, 112, 3) float32 RGB scaled (x − 127.5) / 128; output (2, 192). Batches
    go through two chips at a time, an odd last chip padded with zeros (the network has no
    batch-wide operation, so a face's vector does not depend on its partner).
    """

    name = "mobilefacenet"
    dim = MFN_DIM
    batch = 2

    def __init__(self, make_interpreter: Callable[[], Any]) -> None:
        self._make = make_interpreter
        self._local = threading.local()

    def _interpreter(self) -> tuple[Any, int, int]:
        # LiteRT interpreters are not thread-safe: one per worker thread.
        cached = getattr(self._local, "it", None)
        if cached is None:
            it = self._make()
            it.allocate_tensors()
            inp, out = it.get_input_details()[0], it.get_output_details()[0]
            if tuple(inp["shape"]) != (self.batch, MFN_SIZE, MFN_SIZE, 3) or tuple(
                out["shape"]
            ) != (self.batch, MFN_DIM):
                raise ValueError(f"unexpected MobileFaceNet graph: {inp['shape']} → {out['shape']}")
            cached = (it, inp["index"], out["index"])
            self._local.it = cached
        return cached

    def embed(self, chips: np.ndarray) -> np.ndarray:
        """Return a (N, 192) float32 array for a (N, 112, 112, 3) uint8 RGB batch."""
        if len(chips) == 0:
            return np.zeros((0, MFN_DIM), dtype=np.float32)
        it, inp, out = self._interpreter()
        x = (chips.astype(np.float32) - 127.5) / 128.0
        n = len(x)
        if n % self.batch:
            x = np.concatenate(
                [x, np.zeros((self.batch - n % self.batch, *x.shape[1:]), np.float32)]
            )
        result = np.empty((len(x), MFN_DIM), dtype=np.float32)
        for i in range(0, len(x), self.batch):
            it.set_tensor(inp, np.ascontiguousarray(x[i : i + self.batch]))
            it.invoke()
            result[i : i + self.batch] = it.get_tensor(out)
        return result[:n]


def embed_chips(embedder: Embedder, chips: np.ndarray, flip: bool, views: int = 1) -> np.ndarray:
    """Embed chips in one batch and average each face's views.

    `chips` holds `views` consecutive chips per face (e.g. several paddings); with `flip`
    each chip's mirror image is added. Returns one raw descriptor per face.
    """
    if len(chips) == 0:
        return np.zeros((0, getattr(embedder, "dim", 128)), dtype=np.float32)
    batch = np.concatenate([chips, chips[:, :, ::-1]]) if flip else chips
    out = embedder.embed(batch)
    if flip:
        out = out[: len(chips)] + out[len(chips) :]
    per_face = out.reshape(len(chips) // views, views, -1).sum(axis=1)
    return np.asarray(per_face / (views * (2 if flip else 1)), dtype=np.float32)


def normalise(vectors: np.ndarray) -> np.ndarray:
    """L2-normalise rows; a zero row stays zero."""
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return np.asarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)


# ---- spaces: fusion, projection, the raw score -------------------------------------------------


def fuse(space: str, parts: list[np.ndarray]) -> np.ndarray:
    """The space's vectors from its parts' raw vectors (one (N, dim) array per part, in the
    space's part order): each part L2-normalised, scaled by √weight, concatenated."""
    from faceplane.engine.models.registry import get_space

    spec = get_space(space)
    scaled = [
        normalise(v) * np.float32(math.sqrt(p.weight))
        for p, v in zip(spec.parts, parts, strict=True)
    ]
    return np.asarray(np.concatenate(scaled, axis=-1), dtype=np.float32)


def part_vectors(space: str, vectors: np.ndarray) -> dict[str, np.ndarray]:
    """Each part's unit vectors, by part space, from (N, dim) vectors of `space`."""
    from faceplane.engine.models.registry import get_space

    spec = get_space(space)
    out, start = {}, 0
    for p in spec.parts:
        out[p.space] = normalise(vectors[..., start : start + p.dim])
        start += p.dim
    return out


def can_project(source: str, target: str) -> bool:
    """True when vectors of `source` hold every part of `target`."""
    from faceplane.engine.models.registry import get_space

    have = {p.space for p in get_space(source).parts}
    return all(p.space in have for p in get_space(target).parts)


def project(vectors: np.ndarray, source: str, target: str) -> np.ndarray:
    """Vectors of `source` re-expressed in `target`, a space made of some of source's parts
    (a fused vector's dlib part, renormalised, is its dlib_resnet_v1 vector)."""
    if source == target:
        return vectors
    from faceplane.engine.models.registry import get_space

    parts = part_vectors(source, vectors)
    return fuse(target, [parts[p.space] for p in get_space(target).parts])
