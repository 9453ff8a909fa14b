"""Does the quality score predict recognition? Error-versus-discard curves on LFW View 1 DevTest.

    FACEPLANE_TESTDATA=../shared/testdata .venv/bin/python bench/quality.py [--png edc.png]

For DevTest's 500 genuine pairs (never used to fit the score, `train/quality_score.py` reads
DevTrain only), each image is analysed by the server's pipeline at default settings; a pair's
quality is the lower of its two faces'. Discarding the lowest-quality fraction of pairs
(0–30 %), the table gives the false non-match rate at the FAR 1e-3 threshold of the shipped
calibration, for the unified score, for each component alone (oriented so that higher is
better), for the sharpness Faceplane measured before issue 13 (Laplacian variance) and for
random discarding (mean of 200 draws). A second table repeats it with one image of each pair
replaced by a degraded copy (bench/quality_data.py's kinds, seeded by file name). Then the
default gate's refusal rate on View 1 faces, by reason, and the cost of the measures per face.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import quality_data as qd
from common import print_table, testdata_dir
from faceplane.engine.models.registry import FUSED_SPACE, calibration
from faceplane.engine.quality import Quality, QualityPolicy

FAR = 1e-3
FRACTIONS = np.array([0.0, 0.02, 0.05, 0.10, 0.15, 0.20, 0.30])
RANDOM_DRAWS = 200


def _occ(q: Quality, key: str) -> float:
    return 0.0 if q.occlusion is None else -q.occlusion[key]


# The measures an EDC is drawn for, each as "higher is better" from a face's quality.
MEASURES: dict[str, Any] = {
    "unified score": lambda q, r: q.score,
    "sharpness": lambda q, r: q.sharpness,
    "exposure (under)": lambda q, r: -q.under_exposure,
    "exposure (over)": lambda q, r: -q.over_exposure,
    "brightness (near 0.5)": lambda q, r: -abs(q.brightness - 0.5),
    "uniformity": lambda q, r: q.uniformity,
    "dynamic range": lambda q, r: q.dynamic_range,
    "compression": lambda q, r: -q.compression,
    "yaw": lambda q, r: -abs(q.yaw),
    "pitch": lambda q, r: -abs(q.pitch),
    "roll": lambda q, r: -abs(q.roll),
    "inter-eye distance": lambda q, r: q.inter_eye_px,
    "incomplete": lambda q, r: -q.incomplete,
    "eyes open": lambda q, r: min((q.eye_openness or {"x": 0.3}).values()),
    "mouth closed": lambda q, r: -(q.mouth_openness or 0.0),
    "occlusion: eyes": lambda q, r: min(_occ(q, "left_eye"), _occ(q, "right_eye")),
    "occlusion: nose": lambda q, r: _occ(q, "nose"),
    "occlusion: mouth": lambda q, r: _occ(q, "mouth"),
    "occlusion: chin": lambda q, r: _occ(q, "chin"),
    "occlusion: cheeks": lambda q, r: min(_occ(q, "left_cheek"), _occ(q, "right_cheek")),
    "today's sharpness (Laplacian)": lambda q, r: r["legacy_sharpness"],
}


def face_value(rec: dict[str, Any], fn: Any) -> float:
    """A face's value of a measure; a photo without a detected face is the worst."""
    q = rec["quality"]
    if q is None:
        return -np.inf
    v = fn(q, rec)
    return -np.inf if v is None else float(v)


def curves(
    pairs: list[tuple[dict[str, Any], dict[str, Any]]], thr: float
) -> tuple[dict[str, np.ndarray], int]:
    matched = np.array([float(a["embedding"] @ b["embedding"]) >= thr for a, b in pairs])
    out = {}
    rng = np.random.default_rng(0)
    for name, fn in MEASURES.items():
        # Ties (many faces share an occlusion of 0) are broken at random, the same for all.
        jitter = rng.random(len(pairs)) * 1e-9
        pq = np.array([min(face_value(a, fn), face_value(b, fn)) for a, b in pairs]) + jitter
        out[name] = qd.edc(pq, matched, FRACTIONS)
    draws = [qd.edc(rng.random(len(pairs)), matched, FRACTIONS) for _ in range(RANDOM_DRAWS)]
    out["random"] = np.mean(draws, axis=0)
    return out, int((~matched).sum())


def print_curves(title: str, result: dict[str, np.ndarray], misses: int, n: int) -> None:
    print(f"\n### {title}\n")
    print(f"{n} genuine pairs, {misses} false non-matches with nothing discarded.\n")
    header = ["discarding the lowest"] + [f"{f:.0%}" for f in FRACTIONS] + ["FNMR drop at 10%"]
    rows = []
    i10 = int(np.argmin(np.abs(FRACTIONS - 0.10)))
    for name, c in sorted(result.items(), key=lambda kv: kv[1][i10]):
        drop = 1 - c[i10] / c[0] if c[0] > 0 else 0.0
        rows.append([name] + [f"{v:.2%}" for v in c] + [f"{drop:.0%}"])
    print_table(header, rows)


def plot(path: Path, panels: list[tuple[str, dict[str, np.ndarray]]]) -> None:
    """EDC panels as a PNG (drawn with OpenCV: the score, the old sharpness, random, and the
    three best components)."""
    w, h, pad = 560, 420, 60
    colours = [(200, 30, 30), (30, 120, 200), (120, 120, 120), (40, 160, 60), (220, 140, 20),
               (150, 60, 170)]  # fmt: skip
    canvas = []
    for title, result in panels:
        img = np.full((h, w, 3), 255, np.uint8)
        comps = [k for k in result if k not in ("unified score", "random") and "today" not in k]
        i10 = int(np.argmin(np.abs(FRACTIONS - 0.10)))
        comps = sorted(comps, key=lambda k: result[k][i10])[:3]
        names = ["unified score", "today's sharpness (Laplacian)", "random", *comps]
        top = max(float(result[n].max()) for n in names) * 1.1 or 0.01

        def xy(f: float, v: float, top: float = top) -> tuple[int, int]:
            return (int(pad + f / 0.3 * (w - 2 * pad)), int(h - pad - v / top * (h - 2 * pad)))

        cv2.rectangle(img, xy(0, 0), xy(0.3, top), (0, 0, 0), 1)
        for f in (0.0, 0.1, 0.2, 0.3):
            cv2.putText(img, f"{f:.0%}", (xy(f, 0)[0] - 12, h - pad + 20), 0, 0.4, (0, 0, 0), 1)
        for k in range(5):
            v = top * k / 4
            cv2.putText(img, f"{v:.1%}", (4, xy(0, v)[1] + 4), 0, 0.4, (0, 0, 0), 1)
        cv2.putText(img, title, (pad, 24), 0, 0.5, (0, 0, 0), 1)
        cv2.putText(img, "fraction discarded", (w // 2 - 60, h - 12), 0, 0.45, (0, 0, 0), 1)
        for n, col in zip(names, colours, strict=False):
            pts = np.array([xy(f, v) for f, v in zip(FRACTIONS, result[n], strict=True)])
            cv2.polylines(img, [pts.astype(np.int32)], False, col[::-1], 2)
        for i, (n, col) in enumerate(zip(names, colours, strict=False)):
            y = h - pad - 10 - 16 * (len(names) - 1 - i)
            cv2.line(img, (pad + 10, y - 4), (pad + 30, y - 4), col[::-1], 2)
            cv2.putText(img, n, (pad + 35, y), 0, 0.4, (0, 0, 0), 1)
        canvas.append(img)
    cv2.imwrite(str(path), np.hstack(canvas))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--png", type=Path, default=None, help="write the EDC plot here")
    args = parser.parse_args()
    root = qd.lfw_root(testdata_dir())
    cache = Path.home() / ".cache" / "faceplane" / "quality" / "devtest"
    pairs, files = qd.pair_images(root, "DevTest")
    recs = qd.cached_extract(cache, root, files, 1, args.workers)
    t0 = time.perf_counter()
    recs = qd.measure(root, recs)
    per_face = (time.perf_counter() - t0) / max(1, sum(r["quality"] is not None for r in recs))
    clean = {r["file"]: r for r in recs if r["variant"] == "clean"}
    degraded = {r["file"]: r for r in recs if r["variant"] != "clean"}
    thr = calibration(FUSED_SPACE, "flip").score_for_far(FAR)
    genuine = [(a, b) for a, b, same in pairs if same]

    print("## Quality: error versus discard on LFW View 1 DevTest\n")
    print(f"Space {FUSED_SPACE}, threshold at FAR {FAR:g}: raw score {thr:.4f}.")
    clean_pairs = [(clean[a], clean[b]) for a, b in genuine]
    res_clean, miss_clean = curves(clean_pairs, thr)
    print_curves("Clean pairs", res_clean, miss_clean, len(clean_pairs))
    deg_pairs = [(clean[a], degraded[b]) for a, b in genuine if b in degraded]
    res_deg, miss_deg = curves(deg_pairs, thr)
    kinds = Counter(degraded[b]["variant"] for _, b in genuine if b in degraded)
    listed = ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))
    print_curves(f"One image of each pair degraded ({listed})", res_deg, miss_deg, len(deg_pairs))
    if args.png:
        plot(
            args.png, [("DevTest clean pairs", res_clean), ("DevTest, one image degraded", res_deg)]
        )
        print(f"\nPlot: {args.png}")

    print("\n### The default gate on View 1 faces\n")
    policy = QualityPolicy()
    rows = []
    for title, faces in (("DevTest images (clean)", list(clean.values())),):
        found = [r for r in faces if r["quality"] is not None]
        refused = [r for r in found if policy.issues(r["quality"])]
        reasons = Counter(policy.issues(r["quality"])[0] for r in refused)
        rows.append(
            [title, str(len(found)), f"{len(refused) / max(len(found), 1):.1%}",
             ", ".join(f"{k} {v}" for k, v in reasons.most_common())]
        )  # fmt: skip
    by_kind: dict[str, list[bool]] = {}
    for r in degraded.values():
        if r["quality"] is not None:
            by_kind.setdefault(r["variant"], []).append(bool(policy.issues(r["quality"])))
    print_table(["faces", "detected", "refused (level AUTO)", "first reason"], rows)
    print("\nDegraded copies refused, by kind (level AUTO):\n")
    print_table(
        ["kind", "faces", "refused"],
        [[k, str(len(v)), f"{np.mean(v):.0%}"] for k, v in sorted(by_kind.items())],
    )
    print(f"\nMeasures and score: {per_face * 1000:.1f} ms per face (in-process, one core).")


if __name__ == "__main__":
    main()
