"""1:N identification on LFW View 1 people, and the FAR actually measured at each threshold.

    python bench/identify.py [--people peopleDevTest.txt] [--workers 2]

Gallery: the first image of every person with at least 2 images. Genuine probes: their other
images. Impostor probes: every image of the people with a single image, enrolled nowhere.
The thresholds shipped with the model were measured on the DevTrain images; DevTest holds
other people, so this is a held-out check of the FAR they claim. Search is exact here (the
index benchmark is bench/search.py).
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

    from faceplane.engine.models.registry import DLIB_SPACE, FUSED_SPACE, MFN_SPACE, get_space

    tta = args.engine.split("+", 1)[1] if "+" in args.engine else "flip"
    embedder = args.engine.split("+", 1)[0]
    space = {"mobilefacenet": MFN_SPACE, "fused": FUSED_SPACE, "auto": FUSED_SPACE}
    spec = get_space(space.get(embedder, DLIB_SPACE))
    gen = np.stack([vectors[f] for f in genuine]) @ g.T
    imp = np.stack([vectors[f] for f in impostor]) @ g.T
    truth = np.array([f.split("/")[0] for f in genuine])
    rank1 = float(np.mean(who[gen.argmax(1)] == truth))
    print(
        f"{args.people}: gallery {len(gallery)} people, {len(genuine)} genuine probes, "
        f"{len(impostor)} impostor probes; {rate:.1f} images/s, {missed} without a detection"
    )
    print(f"rank-1 identification rate (no threshold): {rank1 * 100:.2f}%")
    rows = []
    for far, cut in sorted(spec.far_cosine[tta].items(), reverse=True):
        pairs = imp.size
        false = int((imp > cut).sum())
        # 95% interval of a binomial proportion (Wilson) for the measured pairwise FAR.
        p = false / pairs
        z = 1.96
        half = z * math.sqrt(p * (1 - p) / pairs + z * z / (4 * pairs * pairs))
        centre = (p + z * z / (2 * pairs)) / (1 + z * z / pairs)
        lo, hi = max(0.0, centre - half), centre + half
        hit = gen.max(1) > cut
        correct = float(np.mean(hit & (who[gen.argmax(1)] == truth)))
        alarms = float(np.mean(imp.max(1) > cut))
        rows.append(
            [
                f"{far:.0e}",
                f"{cut:.4f}",
                f"{p:.2e} [{lo:.1e}, {hi:.1e}]",
                str(false),
                f"{correct * 100:.1f}",
                f"{alarms * 100:.2f}",
            ]
        )
    print_table(
        [
            "claimed FAR",
            "cosine",
            "measured pairwise FAR [95% CI]",
            "false pairs",
            "rank-1 hit above threshold %",
            "impostor searches with a match %",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
