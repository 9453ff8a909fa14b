"""The model pool: loads each model once, lazily, and reports what is present and loaded."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from faceplane.engine.detect import BlazeFaceDetector, Detector, HogDetector, RetinaFaceDetector
from faceplane.engine.embed import DlibEmbedder, Embedder, MobileFaceNetEmbedder, OnnxEmbedder
from faceplane.engine.mesh import CanonicalFace, FaceMesher, load_geometry
from faceplane.engine.models.install import is_installed
from faceplane.engine.models.registry import (
    MODELS,
    ModelSpec,
    embedder_space,
    get_space,
    get_spec,
)
from faceplane.errors import Err, FaceplaneError

# Detector choices, and the model each one loads.
DETECTORS = {
    "retinaface": "retinaface_mnet025",
    "blazeface": "blazeface_full_range",
    "hog": "dlib_hog",
}

# FACEPLANE_EMBEDDER values: `auto` fuses dlib's ResNet (ONNX when installed) with MobileFaceNet
# when MobileFaceNet is installed, else dlib's ResNet alone; `fused` insists on the fusion;
# `onnx` / `dlib` are dlib's ResNet alone (ONNX / dlib's own); `mobilefacenet` is it alone.


class ModelPool:
    """Owns loaded models. Missing models raise MODEL_UNAVAILABLE when first needed."""

    def __init__(
        self,
        models_dir: Path,
        ort_threads: int = 1,
        embedder: str = "auto",
        model_set: str = "default",
    ) -> None:
        self.models_dir = models_dir
        self.model_set = model_set
        self.ort_threads = ort_threads
        self.embedder_choice = embedder
        self._loaded: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._present: dict[str, bool] = {}

    def present(self, name: str) -> bool:
        """True when the model's file is installed and its checksum is right (cached)."""
        if name not in self._present:
            self._present[name] = is_installed(self.models_dir, get_spec(name))
        return self._present[name]

    def allowed(self, name: str) -> bool:
        """True when the model belongs to the model set in force (research models need
        FACEPLANE_MODEL_SET=research)."""
        return self.model_set == "research" or not get_spec(name).research

    def _load(self, name: str, loader: Callable[[ModelSpec, Path | None], Any]) -> Any:
        with self._lock:
            if name in self._loaded:
                return self._loaded[name]
            spec = get_spec(name)
            if not self.allowed(name):
                raise FaceplaneError(
                    Err.MODEL_UNAVAILABLE,
                    f"Model {name} is for research only ({spec.training_data}); it runs only "
                    "with FACEPLANE_MODEL_SET=research.",
                    model=name,
                    model_set=self.model_set,
                )
            if not self.present(name):
                raise FaceplaneError(
                    Err.MODEL_UNAVAILABLE,
                    f"Model {name} is not installed; run `faceplane models install`.",
                    model=name,
                )
            path = self.models_dir / spec.file if spec.file else None
            obj = loader(spec, path)
            self._loaded[name] = obj
            return obj

    def detector_name(self, name: str = "auto") -> str:
        """The detector a choice means: `auto` is RetinaFace, or BlazeFace when only it is
        installed. (Never HOG: ten times slower, it is there only by name; with neither model
        installed, `auto` means RetinaFace, whose absence MODEL_UNAVAILABLE then reports.)"""
        if name == "auto":
            if not self.present("retinaface_mnet025") and self.present("blazeface_full_range"):
                return "blazeface"
            return "retinaface"
        if name not in DETECTORS:
            raise ValueError(f"unknown detector {name!r}: choose from auto, {', '.join(DETECTORS)}")
        return name

    def detector_model(self, name: str = "auto") -> str:
        """The model the detector choice `name` loads."""
        return DETECTORS[self.detector_name(name)]

    def detector(self, name: str = "auto") -> Detector:
        """Return the detector `auto` (see `detector_name`), `retinaface`, `blazeface` or
        `hog`; a missing model raises MODEL_UNAVAILABLE."""
        name = self.detector_name(name)
        if name == "hog":
            return self._load("dlib_hog", _load_hog)
        if name == "retinaface":
            return self._load(
                "retinaface_mnet025", lambda s, p: _load_retinaface(p, self.ort_threads)
            )
        return self._load("blazeface_full_range", _load_blazeface)

    def shape_predictor(self, points: int = 5) -> Any:
        """Return dlib's 5-point (alignment) or 68-point shape predictor."""
        return self._load(f"dlib_{points}pt", _load_shape_predictor)

    def mesh(self) -> FaceMesher:
        """The MediaPipe 468-point face mesh model."""
        return self._load("mediapipe_face_mesh", _load_mesh)

    def face_geometry(self) -> CanonicalFace:
        """MediaPipe's canonical 3D face (the mesh's head-pose reference)."""
        return self._load("mediapipe_face_geometry", lambda s, p: load_geometry(_path(p)))

    def _dlib_embedder_name(self) -> str:
        choice = self.embedder_choice
        if choice == "onnx" or (choice in ("auto", "fused") and self.present("dlib_resnet_onnx")):
            return "dlib_resnet_onnx"
        return "dlib_resnet"

    def embedder_name(self) -> str:
        """The embedder set in force, without loading it: one model name, or the fused set's
        names joined by `+` (`dlib_resnet_onnx+mobilefacenet`); see FACEPLANE_EMBEDDER above."""
        choice = self.embedder_choice
        if choice == "mobilefacenet":
            return "mobilefacenet"
        if choice == "fused" or (choice == "auto" and self.present("mobilefacenet")):
            return f"{self._dlib_embedder_name()}+mobilefacenet"
        return self._dlib_embedder_name()

    def embedding_space(self) -> str:
        """The embedding space the embedder set in force makes (registry.SPACES)."""
        return embedder_space(self.embedder_name()).name

    def embedder_name_for(self, space: str) -> str:
        """The embedder set that makes `space` here: the parts of the set in force that make
        its parts (`dlib_resnet_onnx` for dlib_resnet_v1 on a fused server), else each part's
        first model."""
        ours = {get_spec(n).space: n for n in self.embedder_name().split("+")}
        spec = get_space(space)
        return "+".join(ours.get(p.space) or spec.models(p)[0] for p in spec.parts)

    def embedder(self, name: str | None = None) -> Embedder:
        """One embedder by model name; by default the dlib ResNet of the set in force (ONNX
        when installed, unless settings say dlib)."""
        name = name or self._dlib_embedder_name()
        if name == "mobilefacenet":
            return self._load("mobilefacenet", _load_mobilefacenet)
        if name == "dlib_resnet_onnx":
            return self._load(
                "dlib_resnet_onnx", lambda s, p: _load_onnx_embedder(p, self.ort_threads)
            )
        return self._load("dlib_resnet", _load_dlib_embedder)

    def status(self) -> list[dict[str, Any]]:
        """Per model: task, version, sha256, licence, training data, present, loaded."""
        from faceplane.engine.models.install import recorded_sha256

        return [
            {
                "name": m.name,
                "task": m.task,
                "version": m.version,
                "sha256": recorded_sha256(self.models_dir, m) if m.file else None,
                "licence": m.licence,
                "training_data": m.training_data,
                "present": self.present(m.name),
                "model_set": "research" if m.research else "default",
                "allowed": self.allowed(m.name),
                "loaded": m.name in self._loaded,
                "note": m.note,
            }
            for m in MODELS
        ]


def _load_blazeface(spec: ModelSpec, path: Path | None) -> BlazeFaceDetector:
    from ai_edge_litert.interpreter import Interpreter

    return BlazeFaceDetector(lambda: Interpreter(model_path=str(path), num_threads=1))


def _path(path: Path | None) -> Path:
    assert path is not None
    return path


def _load_mesh(spec: ModelSpec, path: Path | None) -> FaceMesher:
    from ai_edge_litert.interpreter import Interpreter

    # One interpreter per worker thread (LiteRT interpreters are not thread-safe).
    return FaceMesher(lambda: Interpreter(model_path=str(path), num_threads=1))


def _load_mobilefacenet(spec: ModelSpec, path: Path | None) -> MobileFaceNetEmbedder:
    from ai_edge_litert.interpreter import Interpreter

    return MobileFaceNetEmbedder(lambda: Interpreter(model_path=str(path), num_threads=1))


def _load_hog(spec: ModelSpec, path: Path | None) -> HogDetector:
    import dlib

    return HogDetector(dlib.get_frontal_face_detector())


def _load_shape_predictor(spec: ModelSpec, path: Path | None) -> Any:
    import dlib

    return dlib.shape_predictor(str(path))


def _load_dlib_embedder(spec: ModelSpec, path: Path | None) -> DlibEmbedder:
    import dlib

    return DlibEmbedder(dlib.face_recognition_model_v1(str(path)))


def _ort_session(path: Path | None, threads: int) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    # Parallelism comes from the bounded inference pool, one job per core; more threads
    # inside each session would oversubscribe the two cores.
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _load_onnx_embedder(path: Path | None, threads: int) -> OnnxEmbedder:
    return OnnxEmbedder(_ort_session(path, threads))


def _load_retinaface(path: Path | None, threads: int) -> RetinaFaceDetector:
    return RetinaFaceDetector(_ort_session(path, threads))
