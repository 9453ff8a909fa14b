"""Detection on dlib's hand-labelled photos: recall at IoU ≥ 0.4, false positives, ms per image.

    python bench/detect.py [--repeat 5]

Ground truth: the 43 boxes of faces/dlib/examples/faces/{training,testing}.xml (boxes marked
ignore are skipped). dogs.jpg has no face. Each detector sees the same decoded images; the
time is the median of --repeat runs of detection alone (decode excluded).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import print_table, testdata_dir


def load_truth(folder: Path) -> dict[str, list[tuple[float, float, float, float]]]:
    """Image name → list of (x, y, w, h) boxes from the dlib XML files."""
    truth: dict[str, list[tuple[float, float, float, float]]] = {}
    for name in ("training.xml", "testing.xml"):
        for img in ET.parse(folder / name).getroot().iter("image"):
            boxes = truth.setdefault(img.attrib["file"], [])
            for b in img.iter("box"):
                if b.attrib.get("ignore") == "1":
                    continue
                boxes.append(tuple(float(b.attrib[k]) for k in ("left", "top", "width", "height")))
    truth.setdefault("dogs.jpg", [])
    return truth


def box_iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """IoU of two (x, y, w, h) boxes."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def match(truth: list, found: list) -> tuple[int, int]:
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


def main() -> None:
    """Run every detector on every labelled image and print the table."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    folder = testdata_dir() / "faces" / "dlib" / "examples" / "faces"
    truth = load_truth(folder)
    from faceplane.engine.image import ImageLimits, decode_image
    from faceplane.engine.models.pool import ModelPool
    from faceplane.settings import Settings

    pool = ModelPool(Settings().models_dir)
    images = {n: decode_image((folder / n).read_bytes(), ImageLimits()).rgb for n in truth}
    total = sum(len(v) for v in truth.values())

    import face_recognition

    detectors = {
        "faceplane blazeface_full_range": lambda rgb: [
            (d.x, d.y, d.w, d.h) for d in pool.detector("blazeface").detect(rgb, 0.5)
        ],
        "faceplane dlib_hog (upsample 1)": lambda rgb: [
            (d.x, d.y, d.w, d.h) for d in pool.detector("hog").detect(rgb, 0.5)
        ],
        "face_recognition hog (reference)": lambda rgb: [
            (left, top, right - left, bottom - top)
            for top, right, bottom, left in face_recognition.face_locations(rgb)
        ],
    }
    rows = []
    for name, fn in detectors.items():
        tp = fp = 0
        dog_fp = 0
        times = []
        for img_name, rgb in images.items():
            found = fn(rgb)
            t, f = match(truth[img_name], found)
            tp, fp = tp + t, fp + f
            if img_name == "dogs.jpg":
                dog_fp = len(found)
            runs = []
            for _ in range(args.repeat):
                start = time.perf_counter()
                fn(rgb)
                runs.append(time.perf_counter() - start)
            times.append(statistics.median(runs))
        rows.append(
            [
                name,
                f"{tp}/{total} ({100 * tp / total:.1f}%)",
                str(fp),
                str(dog_fp),
                f"{1000 * float(np.mean(times)):.1f}",
            ]
        )
    print(f"{len(images)} images, {total} labelled faces (IoU ≥ 0.4)")
    print_table(["detector", "recall", "false positives", "on dogs.jpg", "ms/image"], rows)


if __name__ == "__main__":
    main()
