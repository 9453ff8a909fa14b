"""The MediaPipe face mesh: ms per face, what it adds to an analysis, and how well it sits.

    python bench/mesh.py [--lfw 200] [--repeat 3]

Faces: BlazeFace's on the shared group photos (t1.jpg, bbt1–5.jpg, couple.jpg) and on --lfw
LFW View 1 images (a fixed sample). Timings are one thread (as each inference-pool worker
runs), medians over --repeat passes:
- `mesh, per face`: the upright 192×192 crop, the model and the mapping back to the image;
- `model alone`: LiteRT's invoke on a ready crop;
- `pose + openness`: the canonical-face fit and the eye and mouth ratios from a mesh;
- `analyse_image`: the whole engine pipeline per image (detect, 5 points, quality) with the
  mesh measuring quality and without.
Placement: mean distance of 8 mesh points (eye and mouth corners, nose tip, chin) to dlib's
68-point model's same points on the LFW sample, over the inter-ocular distance, for the input
scaled to [0, 1] (what Faceplane feeds) and to [-1, 1]: the smaller is the model's own range.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import print_table, testdata_dir

GROUPS = (
    "faces/insightface/t1.jpg",
    *(f"faces/faceapijs/examples/images/bbt{i}.jpg" for i in range(1, 6)),
    "faces/deepface/images/couple.jpg",
)
# Mesh index → iBUG 68 index: eye corners, mouth corners, nose tip, chin.
PAIRS = ((33, 36), (133, 39), (362, 42), (263, 45), (61, 48), (291, 54), (1, 30), (152, 8))


def ms(fn: object, items: list, repeat: int) -> tuple[float, float]:
    """Median and p95 over items of the median over `repeat` runs, in ms."""
    per = []
    for item in items:
        runs = []
        for _ in range(repeat):
            t = time.perf_counter()
            fn(item)  # type: ignore[operator]
            runs.append((time.perf_counter() - t) * 1000)
        per.append(statistics.median(runs))
    per.sort()
    return statistics.median(per), per[min(len(per) - 1, int(0.95 * len(per)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lfw", type=int, default=200, help="LFW images in the sample")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import dlib

    from faceplane.engine import mesh as M
    from faceplane.engine.faces import AnalyseOptions, analyse_image
    from faceplane.engine.models.pool import ModelPool
    from faceplane.settings import Settings

    pool = ModelPool(Settings().models_dir)
    detector, mesher, canonical = pool.detector(), pool.mesh(), pool.face_geometry()
    data = testdata_dir()
    random.seed(12)
    lfw = random.sample(sorted((data / "lfw_view1/images").glob("*/*.jpg")), args.lfw)
    images = [np.asarray(Image.open(data / p).convert("RGB")) for p in GROUPS]
    images += [np.asarray(Image.open(p).convert("RGB")) for p in lfw]

    faces = []  # (image, roi)
    for rgb in images:
        for d in detector.detect(rgb, 0.5):
            assert d.keypoints is not None
            faces.append((rgb, M.face_roi((d.x, d.y, d.w, d.h), d.keypoints[0], d.keypoints[1])))
    crops = [mesher.crop(rgb, roi) for rgb, roi in faces]
    meshes = [mesher.run(rgb, roi).points for rgb, roi in faces]

    def measures(points: np.ndarray) -> None:
        M.mesh_pose(points, canonical)
        M.eye_openness(points)
        M.mouth_openness(points)

    rows = []
    for name, fn, items in (
        ("mesh, per face", lambda f: mesher.run(*f), faces),
        ("model alone, per face", mesher.run_crop, crops),
        ("pose + openness, per face", measures, meshes),
        (
            "analyse_image, mesh on, per image",
            lambda im: analyse_image(pool, im, AnalyseOptions()),
            images,
        ),
        (
            "analyse_image, mesh off, per image",
            lambda im: analyse_image(pool, im, AnalyseOptions(mesh_quality=False)),
            images,
        ),
    ):
        fn(items[0])  # warm up
        p50, p95 = ms(fn, items, args.repeat)
        rows.append([name, str(len(items)), f"{p50:.2f}", f"{p95:.2f}"])
    print(f"{len(faces)} faces in {len(images)} images\n")
    print_table(["step", "n", "p50 ms", "p95 ms"], rows)

    # Placement against dlib's 68 points, for both input ranges.
    sp68 = pool.shape_predictor(68)
    it, inp, pts_i, _ = mesher._interpreter()
    errors: dict[str, list[float]] = {"[0, 1]": [], "[-1, 1]": []}
    for path in lfw:
        rgb = np.asarray(Image.open(path).convert("RGB"))
        found = detector.detect(rgb, 0.5)
        if not found:
            continue
        d = max(found, key=lambda f: f.area)
        assert d.keypoints is not None
        shape = sp68(rgb, dlib.rectangle(int(d.x), int(d.y), int(d.x + d.w), int(d.y + d.h)))
        ref = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
        iod = float(np.linalg.norm(ref[36:42].mean(0) - ref[42:48].mean(0)))
        roi = M.face_roi((d.x, d.y, d.w, d.h), d.keypoints[0], d.keypoints[1])
        crop = mesher.crop(rgb, roi).astype(np.float32)
        to_image = M._crop_to_image(roi)
        for label, tensor in (("[0, 1]", crop / 255.0), ("[-1, 1]", crop / 127.5 - 1.0)):
            it.set_tensor(inp, tensor[None])
            it.invoke()
            raw = it.get_tensor(pts_i).reshape(468, 3)[:, :2]
            xy = raw @ to_image[:, :2].T + to_image[:, 2]
            err = np.mean([np.linalg.norm(xy[a] - ref[b]) for a, b in PAIRS]) / iod
            errors[label].append(float(err))
    a, b = np.array(errors["[0, 1]"]), np.array(errors["[-1, 1]"])
    print(f"\nplacement vs dlib 68-point, {len(a)} LFW faces (error / inter-ocular distance)\n")
    print_table(
        ["input range", "mean", "median", "faces where it is the closer"],
        [
            ["[0, 1]", f"{a.mean():.4f}", f"{np.median(a):.4f}", f"{(a < b).mean():.0%}"],
            ["[-1, 1]", f"{b.mean():.4f}", f"{np.median(b):.4f}", f"{(b < a).mean():.0%}"],
        ],
    )


if __name__ == "__main__":
    main()
