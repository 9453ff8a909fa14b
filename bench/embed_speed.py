"""Descriptor speed: dlib's compute_face_descriptor vs faceplane's ONNX conversion, ms per face.

    python bench/embed_speed.py [--repeat 5] [--onnx PATH]

Both engines embed the same aligned 150×150 RGB chips (dlib's examples/johns, 55 faces,
aligned with dlib's 5-point model). Each row is the median of --repeat passes over all chips,
embedding alone (decode and alignment excluded). Without --onnx the .dat is converted into
a temporary folder first (needs the `onnx` package). The last column is the largest
difference from dlib's descriptors, as a check that both rows computed the same thing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import print_table, testdata_dir


def load_chips(models: Path) -> np.ndarray:
    """Detect, align and crop every johns face the way dlib's recogniser does."""
    import dlib

    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
    chips = []
    for path in sorted((testdata_dir() / "faces/dlib/examples/johns").glob("*/*.jpg")):
        img = dlib.load_rgb_image(str(path))
        # The files are already tight chips: fall back to the whole image if HOG misses.
        boxes = list(detector(img, 1)) or [dlib.rectangle(0, 0, img.shape[1] - 1, img.shape[0] - 1)]
        chips.append(dlib.get_face_chip(img, predictor(img, boxes[0]), size=150, padding=0.25))
    return np.array(chips, dtype=np.uint8)


def timed(
    embed: Callable[[np.ndarray], np.ndarray], chips: np.ndarray, batch: int, repeat: int
) -> tuple[float, np.ndarray]:
    """Median ms per face over `repeat` passes, and the descriptors of the last pass."""
    embed(chips[:batch])  # warm-up: first-run allocation is not what we measure
    runs, out = [], np.zeros(0)
    for _ in range(repeat):
        start = time.perf_counter()
        out = np.concatenate([embed(chips[i : i + batch]) for i in range(0, len(chips), batch)])
        runs.append((time.perf_counter() - start) * 1000 / len(chips))
    return statistics.median(runs), out


def main() -> None:
    """Print the timing table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--onnx", type=Path, help="converted model (default: convert now)")
    args = parser.parse_args()

    import dlib
    import face_recognition_models
    import onnxruntime as ort

    models = Path(face_recognition_models.face_recognition_model_location()).parent
    dat = models / "dlib_face_recognition_resnet_model_v1.dat"
    chips = load_chips(models)
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = args.onnx
        if onnx_path is None:
            from faceplane.engine.models.dlib_resnet import convert_dlib_resnet

            onnx_path = Path(tmp) / "dlib_resnet.onnx"
            convert_dlib_resnet(dat, onnx_path)

        recogniser = dlib.face_recognition_model_v1(str(dat))

        def dlib_embed(batch: np.ndarray) -> np.ndarray:
            if len(batch) == 1:
                return np.array([recogniser.compute_face_descriptor(batch[0])])
            return np.array(recogniser.compute_face_descriptor(list(batch)))

        rows, reference = [], None
        for batch in (1, 8):
            ms, out = timed(dlib_embed, chips, batch, args.repeat)
            reference = out if reference is None else reference
            diff = np.abs(out - reference).max()
            rows.append(
                ["dlib", str(batch), "dlib's own", f"{ms:.2f}", f"{1000 / ms:.0f}", f"{diff:.1e}"]
            )
        assert reference is not None
        for threads in (1, 2):
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            session = ort.InferenceSession(
                str(onnx_path), options, providers=["CPUExecutionProvider"]
            )

            def onnx_embed(batch: np.ndarray, s: ort.InferenceSession = session) -> np.ndarray:
                return np.asarray(s.run(None, {"chips": batch.astype(np.float32)})[0])

            for batch in (1, 8):
                ms, out = timed(onnx_embed, chips, batch, args.repeat)
                diff = np.abs(out - reference).max()
                rows.append(
                    [
                        "onnxruntime",
                        str(batch),
                        str(threads),
                        f"{ms:.2f}",
                        f"{1000 / ms:.0f}",
                        f"{diff:.1e}",
                    ]
                )
    print(
        f"{len(chips)} chips, median of {args.repeat} passes, dlib {dlib.__version__}, "
        f"onnxruntime {ort.__version__}\n"
    )
    print_table(["engine", "batch", "threads", "ms/face", "faces/s", "max |Δ| vs dlib"], rows)


if __name__ == "__main__":
    main()
