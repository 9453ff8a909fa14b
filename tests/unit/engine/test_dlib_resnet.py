"""The ONNX conversion of dlib's face-recognition ResNet must reproduce dlib's descriptors."""

from __future__ import annotations

import hashlib
import itertools
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from faceplane.engine.models.dlib_resnet import convert_dlib_resnet, parse_dlib_resnet

REPO_ROOT = Path(__file__).resolve().parents[3]
SAME_PERSON = 0.6  # dlib's decision threshold for this model
TOLERANCE = 1e-5
# A few full photos (detection + alignment on real images, not only tight chips), one RGBA.
PHOTOS = (
    "face_recognition/examples/obama.jpg",
    "face_recognition/examples/biden.jpg",
    "face_recognition/examples/two_people.jpg",
    "face_recognition/examples/alex-lacamoire.png",
    "face_recognition/examples/knn_examples/train/kit_harington/john1.jpeg",
    "face_recognition/examples/knn_examples/train/rose_leslie/img1.jpg",
)


def _testdata() -> Path:
    return Path(os.environ.get("FACEPLANE_TESTDATA", REPO_ROOT.parent / "shared" / "testdata"))


def _models_dir() -> Path:
    frm = pytest.importorskip("face_recognition_models", reason="face_recognition_models absent")
    return Path(frm.face_recognition_model_location()).parent


def _dat_path() -> Path:
    path = _models_dir() / "dlib_face_recognition_resnet_model_v1.dat"
    if not path.is_file():
        pytest.skip(f"dlib ResNet model not found at {path}")
    return path


@dataclass
class Faces:
    """Per face: where it came from, dlib's own descriptor and the aligned RGB chip."""

    labels: list[str]
    dlib_descriptors: np.ndarray
    chips: np.ndarray  # [N,150,150,3] uint8 RGB


def _load_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.ascontiguousarray(np.asarray(im.convert("RGB")))


def _faces(paths: list[Path], root: Path, fallback_full_image: bool) -> Faces:
    dlib = pytest.importorskip("dlib", reason="dlib is not installed")
    models = _models_dir()
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
    recogniser = dlib.face_recognition_model_v1(str(_dat_path()))
    labels, descriptors, chips = [], [], []
    for path in paths:
        img = _load_rgb(path)
        boxes = list(detector(img, 1))
        if not boxes and fallback_full_image:
            # The johns files are already tight 150x150 chips; the whole image is the face.
            boxes = [dlib.rectangle(0, 0, img.shape[1] - 1, img.shape[0] - 1)]
        for box in boxes:
            shape = predictor(img, box)
            labels.append(str(path.relative_to(root)))
            descriptors.append(np.array(recogniser.compute_face_descriptor(img, shape)))
            chips.append(dlib.get_face_chip(img, shape, size=150, padding=0.25))
    return Faces(labels, np.array(descriptors, dtype=np.float64), np.array(chips, dtype=np.uint8))


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Convert once per module; the ONNX path and the sha256 the converter returned."""
    pytest.importorskip("onnx", reason="onnx (the 'convert' extra) is not installed")
    out = tmp_path_factory.mktemp("dlib_resnet") / "dlib_resnet.onnx"
    return out, convert_dlib_resnet(_dat_path(), out)


@pytest.fixture(scope="module")
def session(converted: tuple[Path, str]) -> Any:
    """A one-thread CPU onnxruntime session on the converted model."""
    ort = pytest.importorskip("onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(converted[0]), options, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def testdata() -> Path:
    """The shared real-photo folder, or skip."""
    root = _testdata()
    if not (root / "faces").is_dir():
        pytest.skip(f"testdata not found at {root} (set FACEPLANE_TESTDATA)")
    return root / "faces"


@pytest.fixture(scope="module")
def johns(testdata: Path) -> Faces:
    """dlib's examples/johns: 5 people x 11 face chips."""
    paths = sorted((testdata / "dlib" / "examples" / "johns").glob("*/*.jpg"))
    if len(paths) < 10:
        pytest.skip("dlib johns chips missing from testdata")
    return _faces(paths, testdata, fallback_full_image=True)


@pytest.fixture(scope="module")
def photos(testdata: Path) -> Faces:
    """Faces found in a few full photos from face_recognition's examples."""
    paths = [testdata / p for p in PHOTOS if (testdata / p).is_file()]
    if not paths:
        pytest.skip("face_recognition photos missing from testdata")
    return _faces(paths, testdata, fallback_full_image=False)


def _run(session: Any, chips: np.ndarray, batch: int) -> np.ndarray:
    parts = [
        session.run(["descriptors"], {"chips": chips[i : i + batch].astype(np.float32)})[0]
        for i in range(0, len(chips), batch)
    ]
    return np.concatenate(parts).astype(np.float64)


def _max_abs(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape
    return float(np.max(np.abs(a - b)))


@pytest.mark.testdata
@pytest.mark.parametrize("batch", [1, 8])
def test_johns_descriptors_match_dlib(session: Any, johns: Faces, batch: int) -> None:
    ours = _run(session, johns.chips, batch)
    assert _max_abs(ours, johns.dlib_descriptors) < TOLERANCE


@pytest.mark.testdata
def test_photo_descriptors_match_dlib(session: Any, photos: Faces) -> None:
    assert len(photos.labels) >= len(PHOTOS) // 2, photos.labels
    ours = _run(session, photos.chips, 4)
    assert _max_abs(ours, photos.dlib_descriptors) < TOLERANCE


@pytest.mark.testdata
def test_same_different_decisions_unchanged(session: Any, johns: Faces) -> None:
    ours = _run(session, johns.chips, 8)
    flipped = []
    for i, j in itertools.combinations(range(len(ours)), 2):
        theirs_same = np.linalg.norm(johns.dlib_descriptors[i] - johns.dlib_descriptors[j])
        ours_same = np.linalg.norm(ours[i] - ours[j])
        if (theirs_same < SAME_PERSON) != (ours_same < SAME_PERSON):
            flipped.append((johns.labels[i], johns.labels[j]))
    assert flipped == []


@pytest.mark.testdata
def test_bgr_chips_are_not_equivalent(session: Any, johns: Faces) -> None:
    # Guards the channel order: feeding BGR must visibly change the descriptors.
    bgr = _run(session, johns.chips[:8, :, :, ::-1], 8)
    assert _max_abs(bgr, johns.dlib_descriptors[:8]) > 100 * TOLERANCE


def test_converter_returns_sha256_of_written_file(converted: tuple[Path, str]) -> None:
    path, digest = converted
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    assert not [p for p in path.parent.iterdir() if p != path], "temporary file left behind"


def test_model_interface(converted: tuple[Path, str]) -> None:
    import onnx

    model = onnx.load(str(converted[0]))
    (inp,), (out,) = model.graph.input, model.graph.output
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert (inp.name, dims) == ("chips", ["N", 150, 150, 3])
    dims = [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim]
    assert (out.name, dims) == ("descriptors", ["N", 128])
    props = {p.key: p.value for p in model.metadata_props}
    assert props["distance_threshold"] == "0.6"


def test_parse_reads_means_and_layers() -> None:
    net = parse_dlib_resnet(_dat_path())
    np.testing.assert_allclose(net.means, [122.782, 117.001, 104.298], atol=1e-3)
    assert net.input_size == 150
    assert net.descriptor_size == 128
    assert abs(net.distance_threshold - SAME_PERSON) < 1e-6


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda data: data[: len(data) // 2], id="truncated-half"),
        pytest.param(lambda data: data[:-1], id="truncated-one-byte"),
        pytest.param(lambda data: data + b"\x00", id="trailing-byte"),
        pytest.param(lambda data: b"", id="empty"),
        pytest.param(
            lambda data: bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)),
            id="random-garbage",
        ),
        pytest.param(
            lambda data: data.replace(b"loss_metric_2", b"loss_metric_9", 1), id="wrong-loss-layer"
        ),
        # max_pool<3,3,2,2> rewritten as a 2x2 window: well-formed, but not this network.
        pytest.param(
            lambda data: data.replace(
                b"max_pool_2\x01\x03\x01\x03", b"max_pool_2\x01\x02\x01\x02", 1
            ),
            id="wrong-pool-window",
        ),
    ],
)
def test_bad_files_raise_value_error(tmp_path: Path, mangle: Any) -> None:
    bad = tmp_path / "bad.dat"
    bad.write_bytes(mangle(_dat_path().read_bytes()))
    with pytest.raises(ValueError):
        parse_dlib_resnet(bad)


def test_other_dlib_model_raises_value_error() -> None:
    path = _models_dir() / "shape_predictor_5_face_landmarks.dat"
    if not path.is_file():
        pytest.skip("shape predictor not installed")
    with pytest.raises(ValueError):
        parse_dlib_resnet(path)


def test_module_imports_without_onnx() -> None:
    # onnx is only needed at conversion time; block it and import the module fresh.
    code = (
        "import sys; sys.modules['onnx'] = None; "
        "import faceplane.engine.models.dlib_resnet as m; m.parse_dlib_resnet"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
