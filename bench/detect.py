"""Face detection: faceplane's default detector, every candidate tried for issue 12, and
`face_recognition`'s HOG, on the same photos in one run.

    python bench/detect.py [--repeat 5] [--http] [--only NAME,NAME]

Printed, per detector:
- dlib's 43 hand-drawn boxes of faces/dlib/examples/faces/{training,testing}.xml (boxes marked
  ignore are skipped; dogs.jpg has none): matched at IoU ≥ 0.4 (greedy, one to one) and false
  positives;
- every shared photo with a known face count: exact counts (CompreFace's `*_N.jpg`, whose name
  gives N; the others counted by eye, see tests/unit/engine/test_detect.py for how), and two
  mosaic "crowds" of CompreFace's group photos (2×2: 23 faces of about 40 px in 1600×1066;
  3×3: 37 in 2400×1599);
- faces found on 20 noise and texture images (uniform, Gaussian, smooth, wood-like grain; from
  320×240 to 4000×3000, seed 12): each is a false positive;
- detection time, p50 of --repeat runs, wall clock and CPU time of the calling thread (the
  detectors run single-threaded in it), on insightface/t1.jpg resized to 640×480 and
  upscaled to 4000×3000 (12 MP): the detection step as faceplane runs it (downscale to what
  the detector looks at, detect, map back), image already decoded.

Every detector sees the photo as faceplane's pipeline would: at most FACEPLANE_DETECT_MAX_SIDE_PX
(1920) on its long side (face_recognition too, else its HOG takes minutes on the 36 MP photos),
and faces under 20 px are dropped, as `min_face_size` does.

--http adds p50 of POST /v1/detect with an API key, over real HTTP to `faceplane serve`, for
the same two photos as JPEG (decode, detect, landmarks, quality: the whole request).
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import print_table, testdata_dir

Box = tuple[float, float, float, float]
SAMPLES = "faces/compreface/embedding-calculator/sample_images"
# Counted by eye (tests/unit/engine/test_detect.py says how); CompreFace's *_N.jpg are added
# from their names, and its single-person photos with the extra faces seen in them.
COUNTED = {
    "faces/insightface/t1.jpg": 6,
    "faces/deepface/images/couple.jpg": 2,
    "faces/deepface/images/selfie-many-people.jpg": 7,
    "faces/face_recognition/examples/two_people.jpg": 2,
    "faces/face_recognition/examples/knn_examples/test/obama_and_biden.jpg": 3,
    "faces/face_recognition/examples/knn_examples/test/kit_with_rose.jpg": 2,
    "faces/faceapijs/examples/images/bbt1.jpg": 4,
    "faces/faceapijs/examples/images/bbt2.jpg": 3,
    "faces/faceapijs/examples/images/bbt3.jpg": 5,
    "faces/faceapijs/examples/images/bbt4.jpg": 6,
    "faces/faceapijs/examples/images/bbt5.jpg": 5,
    # The subject and three diners behind the plants: a bald man in profile, and a woman and a
    # man in red both mostly hidden by leaves.
    f"{SAMPLES}/002_A.jpg": 4,
    f"{SAMPLES}/003_A.jpg": 1,  # the wood-panelled wall is no face
    f"{SAMPLES}/006_A.jpg": 2,  # the subject and a doll's face cut by the top edge
}
MOSAIC = ["016_8", "015_6", "014_5", "013_4", "012_4", "011_3", "010_2", "000_5", "017_0"]


def load(path: Path) -> np.ndarray:
    from faceplane.engine.image import ImageLimits, decode_image

    return decode_image(path.read_bytes(), ImageLimits()).rgb


def load_truth(folder: Path) -> dict[str, list[Box]]:
    """Image name → list of (x, y, w, h) boxes from the dlib XML files."""
    truth: dict[str, list[Box]] = {}
    for name in ("training.xml", "testing.xml"):
        for img in ET.parse(folder / name).getroot().iter("image"):
            boxes = truth.setdefault(img.attrib["file"], [])
            for b in img.iter("box"):
                if b.attrib.get("ignore") == "1":
                    continue
                x, y, w, h = (float(b.attrib[k]) for k in ("left", "top", "width", "height"))
                boxes.append((x, y, w, h))
    truth.setdefault("dogs.jpg", [])
    return truth


def box_iou(a: Box, b: Box) -> float:
    """IoU of two (x, y, w, h) boxes."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def match(truth: list[Box], found: list[Box]) -> tuple[int, int]:
    """Greedy one-to-one matching at IoU ≥ 0.4: (true positives, false positives)."""
    used: set[int] = set()
    tp = 0
    for t in truth:
        best, best_iou = -1, 0.4
        for i, f in enumerate(found):
            if i not in used and box_iou(t, f) >= best_iou:
                best, best_iou = i, box_iou(t, f)
        if best >= 0:
            used.add(best)
            tp += 1
    return tp, len(found) - len(used)


def textures(seed: int) -> dict[str, np.ndarray]:
    """The noise and texture images of tests/unit/engine/test_detect.py (same generator)."""
    rng = np.random.default_rng(seed)
    out = {}
    for w, h in ((320, 240), (640, 480), (1920, 1080), (4000, 3000)):
        out[f"uniform {w}x{h}"] = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        out[f"gaussian {w}x{h}"] = np.clip(rng.normal(128, 40, (h, w, 3)), 0, 255).astype(np.uint8)
        for cell in (8, 32):
            low = rng.normal(0, 1, (h // cell + 2, w // cell + 2, 3)).astype(np.float32)
            big = cv2.resize(low, (w + 2 * cell, h + 2 * cell), interpolation=cv2.INTER_CUBIC)
            smooth = big[cell : cell + h, cell : cell + w]
            out[f"smooth{cell} {w}x{h}"] = np.clip(128 + 50 * smooth / smooth.std(), 0, 255).astype(
                np.uint8
            )
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        rings = np.hypot(xx - w * 0.3, (yy - h * 0.5) * 3)
        grain = 0.5 + 0.5 * np.sin(rings / 6 + 2 * np.sin(xx / 50) + rng.normal(0, 0.3, (h, w)))
        wood = np.stack([120 + 80 * grain, 80 + 50 * grain, 40 + 30 * grain], -1)
        out[f"wood {w}x{h}"] = wood.clip(0, 255).astype(np.uint8)
    return out


def mosaic(root: Path, n: int) -> np.ndarray:
    """n×n CompreFace group photos, each resized to 800×533, side by side."""
    tiles = [
        cv2.resize(load(root / SAMPLES / f"{m}.jpg"), (800, 533), interpolation=cv2.INTER_AREA)
        for m in MOSAIC[: n * n]
    ]
    return np.vstack([np.hstack(tiles[r * n : (r + 1) * n]) for r in range(n)])


class DenseBlaze:
    """BlazeFace full-range with a 3×3 grid of tiles overlapping by 20% (and the whole
    picture), all merged by its blending NMS: the issue's denser-tiling candidate."""

    name = "blazeface 3×3 tiles"

    def __init__(self, base: object) -> None:
        from faceplane.engine.detect import BlazeFaceDetector

        assert isinstance(base, BlazeFaceDetector)
        self.base = base

    def detect(self, rgb: np.ndarray, threshold: float) -> list:
        h, w = rgb.shape[:2]
        side = max(w, h)
        windows = [((w - side) // 2, (h - side) // 2, side)]
        tile = int(min(w, h) / (3 - 2 * 0.2))
        for ty in np.linspace(0, h - tile, 3).astype(int):
            for tx in np.linspace(0, w - tile, max(3, round(3 * w / h))).astype(int):
                windows.append((int(tx), int(ty), tile))
        parts = [self.base._run_square(rgb, x, y, s, threshold) for x, y, s in windows]
        if not any(len(p[0]) for p in parts):
            return []
        return self.base.merge(parts, w, h, self.name)


class Fusion:
    """RetinaFace's and BlazeFace's candidates merged by NMS: a face is kept when both see it
    (IoU ≥ 0.3, each at ≥ 0.3 raw) or one is sure of it (RetinaFace ≥ 0.95, BlazeFace ≥ 0.85)."""

    name = "fusion retinaface ∪ blazeface"

    def __init__(self, retina: object, blaze: object) -> None:
        self.retina, self.blaze = retina, blaze
        self.max_input_side = getattr(retina, "max_input_side", 1920)

    def detect(self, rgb: np.ndarray, threshold: float) -> list:
        from faceplane.engine.detect import RETINA_KEYPOINTS, Detection, iou

        h, w = rgb.shape[:2]
        rb, rs, rk = self.retina.candidates(rgb)  # type: ignore[attr-defined]
        bl = self.blaze.detect(rgb, 0.3)  # type: ignore[attr-defined]
        bb = np.array([[d.x, d.y, d.x + d.w, d.y + d.h] for d in bl], np.float32).reshape(-1, 4)
        bs = np.array([d.score for d in bl], np.float32)
        used = np.zeros(len(bl), bool)
        out = []
        for box, score, kp in zip(rb, rs, rk, strict=True):
            overlap = iou(box, bb) >= 0.3 if len(bb) else np.zeros(0, bool)
            both = bool(overlap.any())
            used |= overlap
            if score >= 0.95 or both:
                x1, y1 = max(float(box[0]), 0.0), max(float(box[1]), 0.0)
                x2, y2 = min(float(box[2]), float(w)), min(float(box[3]), float(h))
                out.append(Detection(x1, y1, x2 - x1, y2 - y1, float(score), "fusion", kp,
                                     RETINA_KEYPOINTS))  # fmt: skip
        out += [d for d, u, s in zip(bl, used, bs, strict=True) if not u and s >= 0.85]
        return out


def median_ms(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """p50 wall time and p50 CPU time of this thread for `fn`, in ms (one warm-up; fewer runs
    once they add up to 6 s). Every detector here computes in the calling thread, so its CPU
    time is what it costs, whatever else the machine is doing."""
    fn()
    runs, cpu = [], []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.thread_time()
        fn()
        runs.append(time.perf_counter() - start)
        cpu.append(time.thread_time() - start_cpu)
        if sum(runs) > 6:
            break
    return 1000 * statistics.median(runs), 1000 * statistics.median(cpu)


def jpeg(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def http_p50(photos: dict[str, np.ndarray], n: int) -> list[list[str]]:
    """p50 / p95 of POST /v1/detect with an API key, through `faceplane serve`."""
    from common import pct, serving

    rows = []
    with serving() as (client, base):
        for label, rgb in photos.items():
            data = jpeg(rgb)
            times, faces = [], 0
            for i in range(n + 3):
                start = time.perf_counter()
                resp = client.post(base + "/v1/detect", files={"image": ("p.jpg", data)})
                elapsed = time.perf_counter() - start
                resp.raise_for_status()
                faces = len(resp.json()["faces"])
                detector = resp.json()["models"]["detector"]
                if i >= 3:
                    times.append(elapsed)
            rows.append(
                [
                    f"{label} ({len(data) // 1024} KB JPEG)",
                    detector,
                    str(faces),
                    f"{pct(times, 0.5):.1f}",
                    f"{pct(times, 0.95):.1f}",
                ]
            )
    return rows


def main() -> None:
    """Run every detector on every photo and print the tables."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--http", action="store_true", help="also time /v1/detect over HTTP")
    ap.add_argument("--http-n", type=int, default=30)
    ap.add_argument("--only", help="comma-separated detector labels (substrings) to run")
    args = ap.parse_args()
    root = testdata_dir()
    folder = root / "faces" / "dlib" / "examples" / "faces"
    truth = load_truth(folder)
    from faceplane.engine.detect import RetinaFaceDetector
    from faceplane.engine.faces import AnalyseOptions, detect_scaled
    from faceplane.engine.models.pool import ModelPool
    from faceplane.settings import Settings

    settings = Settings()
    pool = ModelPool(settings.models_dir, settings.ort_intra_op_threads)
    max_side, min_face = settings.detect_max_side_px, settings.min_face_size_px
    dlib_images = {n: load(folder / n) for n in truth}
    counted = {Path(p).name: (load(root / p), n) for p, n in COUNTED.items()}
    for f in sorted((root / SAMPLES).glob("*_[0-9].jpg")):
        counted[f.name] = (load(f), int(f.stem[-1]))
    counted["mosaic 2×2"] = (mosaic(root, 2), 23)
    counted["mosaic 3×3"] = (mosaic(root, 3), 37)
    noise = textures(seed=12)
    t1 = load(root / "faces/insightface/t1.jpg")
    speed = {
        "640×480": cv2.resize(t1, (640, 480), interpolation=cv2.INTER_AREA),
        "12 MP": cv2.resize(t1, (4000, 3000), interpolation=cv2.INTER_CUBIC),
    }

    import face_recognition

    retina = pool.detector("retinaface")
    assert isinstance(retina, RetinaFaceDetector)
    session = retina._session

    def variant(**kw: object) -> RetinaFaceDetector:
        return RetinaFaceDetector(session, **kw)  # type: ignore[arg-type]

    default_name = pool.detector_name(AnalyseOptions().detector)
    detectors: dict[str, object] = {
        f"faceplane default ({default_name})": pool.detector(),
        "retinaface 1 pass 640, raw ≥ 0.5": variant(
            edge_pad=0.0, fine_side=640, sure=0.0, op_score=0.5
        ),
        "retinaface 1 pass 640, raw ≥ 0.8": variant(
            edge_pad=0.0, fine_side=640, sure=0.0, op_score=0.8
        ),
        "retinaface + mirror border, raw ≥ 0.8": variant(fine_side=640, sure=0.0, op_score=0.8),
        "retinaface + mirror + 2nd look": variant(fine_side=640),
        "retinaface + mirror + 2nd look + 1280 pass": variant(fine_side=1280),
        "retinaface 1 pass 1440, raw ≥ 0.8": variant(
            base_side=1440, edge_pad=0.0, fine_side=1440, sure=0.0, op_score=0.8
        ),
        "blazeface 2×2 tiles (former default)": pool.detector("blazeface"),
        "blazeface 3×3 tiles": DenseBlaze(pool.detector("blazeface")),
        "fusion retinaface ∪ blazeface": Fusion(
            pool.detector("retinaface"), pool.detector("blazeface")
        ),
        "faceplane dlib_hog (upsample 1)": pool.detector("hog"),
    }

    def run(det: object) -> Callable[[np.ndarray], list[Box]]:
        def fn(rgb: np.ndarray) -> list[Box]:
            found = detect_scaled(det, rgb, settings.det_threshold, max_side)  # type: ignore[arg-type]
            return [(d.x, d.y, d.w, d.h) for d in found if min(d.w, d.h) >= min_face]

        return fn

    def fr_hog(rgb: np.ndarray) -> list[Box]:
        h, w = rgb.shape[:2]
        s = min(1.0, max_side / max(h, w))
        small = rgb if s == 1.0 else cv2.resize(rgb, (round(w * s), round(h * s)), cv2.INTER_AREA)
        return [
            ((left) / s, top / s, (right - left) / s, (bottom - top) / s)
            for top, right, bottom, left in face_recognition.face_locations(small)
            if min(right - left, bottom - top) / s >= min_face
        ]

    fns: dict[str, Callable[[np.ndarray], list[Box]]] = {k: run(v) for k, v in detectors.items()}
    fns["face_recognition hog (reference)"] = fr_hog
    if args.only:
        wanted = args.only.split(",")
        fns = {k: v for k, v in fns.items() if any(w in k for w in wanted)}

    rows, per_photo = [], {}
    total = sum(len(v) for v in truth.values())
    for name, fn in fns.items():
        tp = fp = 0
        for img_name, rgb in dlib_images.items():
            t, f = match(truth[img_name], fn(rgb))
            tp, fp = tp + t, fp + f
        counts = {k: len(fn(rgb)) for k, (rgb, _) in counted.items()}
        per_photo[name] = counts
        exact = sum(counts[k] == n for k, (_, n) in counted.items())
        noise_fp = sum(len(fn(rgb)) for rgb in noise.values())
        times = [median_ms(lambda rgb=rgb, fn=fn: fn(rgb), args.repeat) for rgb in speed.values()]
        rows.append(
            [
                name,
                f"{tp}/{total}",
                str(fp),
                f"{exact}/{len(counted)}",
                str(noise_fp),
                f"{times[0][0]:.1f} / {times[0][1]:.1f}",
                f"{times[1][0]:.0f} / {times[1][1]:.0f}",
            ]
        )
        print(f"... {name} done", file=sys.stderr)
    print(
        f"dlib: {len(dlib_images)} images, {total} labelled faces (IoU ≥ 0.4); "
        f"{len(counted)} photos with a known count; {len(noise)} noise and texture images"
    )
    print_table(
        [
            "detector",
            "dlib boxes",
            "dlib false pos.",
            "exact counts",
            "faces on noise",
            "ms 640×480 (wall / CPU)",
            "ms 12 MP (wall / CPU)",
        ],
        rows,
    )
    print()
    names = list(per_photo)
    print_table(
        ["photo", "truth", *[f"({i + 1})" for i in range(len(names))]],
        [
            [
                k,
                str(n),
                *[("" if per_photo[d][k] == n else "**") + str(per_photo[d][k]) for d in names],
            ]
            for k, (_, n) in counted.items()
        ],
    )
    print("columns: " + "; ".join(f"({i + 1}) {n}" for i, n in enumerate(names)))
    print("** marks a count that differs from the truth")
    if args.http:
        print()
        print_table(
            ["POST /v1/detect (API key, one client)", "detector", "faces", "p50 ms", "p95 ms"],
            http_p50(speed, args.http_n),
        )


if __name__ == "__main__":
    main()
