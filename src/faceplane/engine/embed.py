"""Face embedders behind one interface: dlib's ResNet run by dlib, or the same network on ONNX."""

from __future__ import annotations

import threading
from typing import Any, Protocol

import numpy as np


class Embedder(Protocol):
    """Turns aligned 150×150 RGB face chips into raw 128-d descriptors."""

    name: str

    def embed(self, chips: np.ndarray) -> np.ndarray:
        """Return a (N, 128) float32 array for a (N, 150, 150, 3) uint8 RGB batch."""
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


def embed_chips(embedder: Embedder, chips: np.ndarray, flip: bool, views: int = 1) -> np.ndarray:
    """Embed chips in one batch and average each face's views.

    `chips` holds `views` consecutive chips per face (e.g. several paddings); with `flip`
    each chip's mirror image is added. Returns one raw descriptor per face.
    """
    if len(chips) == 0:
        return np.zeros((0, 128), dtype=np.float32)
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
