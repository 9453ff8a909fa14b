"""1:N identification on LFW View 1 people, and the FAR actually measured at each threshold.

    python bench/identify.py [--people peopleDevTest.txt] [--workers 2] [--engine onnx+flip]

Gallery: the first image of every person with at least 2 images. Genuine probes: their other
images. Impostor probes: every image of the people with a single image, enrolled nowhere.
The similarity scale's FAR knots (src/faceplane/engine/models/calibration/<space>.json) were
fitted on the DevTrain images; DevTest holds other people, so this is a held-out check of the
FAR each threshold claims: measured over the impostor probes against the gallery (what search
sees), and over every cross-identity pair of all DevTest images (more pairs, a tighter
interval). Search is exact here (the index benchmark is bench/search.py).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import print_table, testdata_dir
from lfw import embed_all


def main() -> None:
    """Embed, identify and print the tables."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--people", default="peopleDevTest.txt")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--engine", default="onnx+flip", help="an lfw.py engine: fused+flip, ...")
    ap.add_argument("--detector", help="Faceplane's detector (default: the server's)")
    args = ap.parse_args()
    lfw = testdata_dir() / "lfw_view1"
    people = [ln.split() for ln in (lfw / args.people).read_text().splitlines()[1:] if ln.strip()]
    gallery, genuine, impostor = [], [], []
    root = lfw / "images"
    for name, count in people:
        # View 1's folder holds only the images its pair files use: take those that exist.
        files = [f"{name}/{name}_{i:04d}.jpg" for i in range(1, int(count) + 1)]
        files = [f for f in files if (root / f).is_file()]
        if not files:
            continue
        if len(files) >= 2:
            gallery.append(files[0])
            genuine += files[1:]
        else:
            impostor += files
    files = gallery + genuine + impostor
    vectors, rate, missed = embed_all(args.engine, root, files, args.workers, args.detector)
    g = np.stack([vectors[f] for f in gallery])
    who = np.array([f.split("/")[0] for f in gallery])

    from faceplane.engine.models.pool import ModelPool
    from faceplane.engine.models.registry import calibration, space_of
    from faceplane.settings import Settings

    embedder, _, tta = args.engine.partition("+")
    name = ModelPool(Settings().models_dir, 1, embedder).embedder_name()
    cal = calibration(space_of(name), tta or "flip")
    gen = np.stack([vectors[f] for f in genuine]) @ g.T
    imp = np.stack([vectors[f] for f in impostor]) @ g.T
    truth = np.array([f.split("/")[0] for f in genuine])
    rank1 = float(np.mean(who[gen.argmax(1)] == truth))
    # Every cross-identity pair among all the DevTest images.
    names = sorted(vectors)
    owner = np.array([n.split("/")[0] for n in names])
    mat = np.stack([vectors[n] for n in names]).astype(np.float64)
    upper = np.triu_indices(len(names), 1)
    all_imp = (mat @ mat.T)[upper][owner[upper[0]] != owner[upper[1]]]
    print(
        f"{args.people}: gallery {len(gallery)} people, {len(genuine)} genuine probes, "
        f"{len(impostor)} impostor probes ({imp.size} probe-gallery pairs); {all_imp.size} "
        f"cross-identity pairs among all {len(names)} images; {rate:.1f} images/s, "
        f"{missed} without a detection; scale {cal.space}/{cal.mode}"
    )
    print(f"rank-1 identification rate (no threshold): {rank1 * 100:.2f}%")
    rows = []
    for far in (1e-3, 1e-4, 1e-5, 1e-6):
        cut = cal.score_for_far(far)
        knot = next(k for k in cal.knots if k.far == far)
        hit = gen.max(1) >= cut
        correct = float(np.mean(hit & (who[gen.argmax(1)] == truth)))
        alarms = float(np.mean(imp.max(1) >= cut))
        rows.append(
            [
                f"{far:.0e} ({knot.source})",
                f"{cal.threshold(far):.2f}",
                f"{cut:.4f}",
                measured_far(imp, cut),
                measured_far(all_imp, cut),
                f"{correct * 100:.1f}",
                f"{alarms * 100:.2f}",
            ]
        )
    print_table(
        [
            "claimed FAR",
            "similarity",
            "cosine",
            "measured FAR, probes × gallery [95% CI] (false pairs)",
            "measured FAR, all DevTest pairs [95% CI] (false pairs)",
            "rank-1 hit above threshold %",
            "impostor searches with a match %",
        ],
        rows,
    )


def measured_far(scores: np.ndarray, cut: float) -> str:
    """The share of impostor scores at or above `cut`, with its 95% Wilson interval."""
    pairs = scores.size
    false = int((scores >= cut).sum())
    p = false / pairs
    z = 1.96
    half = z * math.sqrt(p * (1 - p) / pairs + z * z / (4 * pairs * pairs))
    centre = (p + z * z / (2 * pairs)) / (1 + z * z / pairs)
    lo, hi = max(0.0, centre - half), centre + half
    return f"{p:.1e} [{lo:.1e}, {hi:.1e}] ({false})"


if __name__ == "__main__":
    main()
