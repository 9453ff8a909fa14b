"""LFW verification: 10-fold accuracy, TAR at FAR 1e-3 and images/s, Faceplane vs face_recognition.

    python bench/lfw.py [--pairs PATH] [--engines onnx+flip,mobilefacenet+flip,fused+flip,
                         face_recognition] [--detector retinaface] [--workers 2]
    python bench/lfw.py --calibrate --pairs .../pairsDevTrain.txt   # calibration, fusion weights

Every engine embeds the same images and is scored on the same pairs, in one run. Each image's
face is the detected face nearest the centre (LFW's subject is centred); an image with no
detection is embedded from the central 100×100 box, the same fallback for every engine.
An engine is `EMBEDDER+TTA`: EMBEDDER is a FACEPLANE_EMBEDDER value (`onnx`, `dlib`,
`mobilefacenet`, `fused`), TTA one of `none`, `flip`, `multi`. Scores are the raw score of the
engine's space (the cosine; for `fused` the weighted sum of the two cosines).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import print_table, testdata_dir

_ENGINE: Any = None


def read_pairs(path: Path) -> list[tuple[str, str, bool]]:
    """Parse an LFW pairs file into (image a, image b, same) with paths relative to images/."""
    lines = [ln.split() for ln in path.read_text().splitlines() if ln.strip()]
    pairs = []
    for parts in lines[1:] if len(lines[0]) <= 2 else lines:
        if len(parts) == 3:
            name, i, j = parts
            pairs.append(
                (f"{name}/{name}_{int(i):04d}.jpg", f"{name}/{name}_{int(j):04d}.jpg", True)
            )
        elif len(parts) == 4:
            n1, i, n2, j = parts
            pairs.append((f"{n1}/{n1}_{int(i):04d}.jpg", f"{n2}/{n2}_{int(j):04d}.jpg", False))
    return pairs


class FaceplaneEngine:
    """Faceplane's pipeline (BlazeFace, dlib 5-point, chip) with one embedder."""

    def __init__(self, embedder: str, tta: str = "flip", detector: str | None = None) -> None:
        from faceplane.runtime import Runtime
        from faceplane.settings import Settings

        # An in-process engine run: the runtime's store goes to a throw-away folder.
        data_dir = tempfile.mkdtemp(prefix="faceplane-bench-")
        extra = {"detector": detector} if detector else {}
        self.services = Runtime.open(
            Settings(
                embedder=embedder, embed_tta=tta, inference_threads=1, data_dir=data_dir, **extra
            )
        )
        self.opts = self.services.analyse_options(embeddings=True)

    def embed(self, path: Path) -> tuple[np.ndarray, bool]:
        """The embedding of the most central face, and whether a face was detected."""
        from faceplane.engine.faces import analyse_image
        from faceplane.engine.image import decode_image

        rgb = decode_image(path.read_bytes(), self.services.limits).rgb
        analysis = analyse_image(self.services.pool, rgb, self.opts)
        face = central_face(analysis.faces, rgb)
        if face is not None:
            assert face.embedding is not None
            return face.embedding, True
        return central_box_embedding(self.services.pool, rgb, self.opts.tta), False


def central_face(faces: list[Any], rgb: np.ndarray) -> Any:
    """The face whose box centre is nearest the image's (LFW's subject), or None."""
    h, w = rgb.shape[:2]
    if not faces:
        return None
    return min(
        faces,
        key=lambda f: (
            (f.detection.x + f.detection.w / 2 - w / 2) ** 2
            + (f.detection.y + f.detection.h / 2 - h / 2) ** 2
        ),
    )


def central_box_embedding(pool: Any, rgb: np.ndarray, tta: str) -> np.ndarray:
    """The embedding of the central 100 × 100 box, for a photo where no face was found (LFW's
    faces are centred: a miss still counts, as an error the embedder makes or not)."""
    import dlib

    from faceplane.engine.detect import Detection
    from faceplane.engine.faces import embed_faces

    h, w = rgb.shape[:2]
    side = min(100, h, w)
    x, y = w // 2 - side // 2, h // 2 - side // 2
    shape = pool.shape_predictor(5)(rgb, dlib.rectangle(x, y, x + side, y + side))
    box = Detection(float(x), float(y), float(side), float(side), 0.0, "centre", None, ())
    return np.asarray(embed_faces(pool, rgb, [box], [shape], tta)[0])


class FaceRecognitionEngine:
    """The reference: the face_recognition library (dlib HOG, 5-point, the same ResNet)."""

    def __init__(self) -> None:
        import face_recognition

        self.fr = face_recognition

    def embed(self, path: Path) -> tuple[np.ndarray, bool]:
        """face_recognition's encoding of the most central face."""
        img = self.fr.load_image_file(str(path))
        h, w = img.shape[:2]
        boxes = self.fr.face_locations(img)
        found = bool(boxes)
        if boxes:
            box = min(
                boxes,
                key=lambda b: ((b[1] + b[3]) / 2 - w / 2) ** 2 + ((b[0] + b[2]) / 2 - h / 2) ** 2,
            )
        else:
            box = (h // 2 - 50, w // 2 + 50, h // 2 + 50, w // 2 - 50)
        enc = self.fr.face_encodings(img, [box], model="small")[0]
        return np.asarray(enc, dtype=np.float32), found


def _init(kind: str, detector: str | None) -> None:
    global _ENGINE
    if kind == "face_recognition":
        _ENGINE = FaceRecognitionEngine()
    elif "+" in kind:
        embedder, tta = kind.split("+", 1)
        _ENGINE = FaceplaneEngine(embedder, tta, detector)
    else:
        _ENGINE = FaceplaneEngine(kind, detector=detector)


def _embed(path: str) -> tuple[str, np.ndarray, bool]:
    vec, found = _ENGINE.embed(Path(path))
    return path, vec, found


def embed_all(
    kind: str, root: Path, files: list[str], workers: int, detector: str | None = None
) -> tuple[dict, float, int]:
    """Embed every file with `workers` processes; return vectors, images/s, no-face count."""
    ctx = mp.get_context("spawn")
    with ctx.Pool(workers, initializer=_init, initargs=(kind, detector)) as pool:
        # Warm each worker (model loading is not part of the throughput).
        pool.map(_embed, [str(root / files[0])] * workers, chunksize=1)
        start = time.perf_counter()
        results = pool.map(_embed, [str(root / f) for f in files], chunksize=8)
        elapsed = time.perf_counter() - start
    vectors = {Path(p).relative_to(root).as_posix(): v for p, v, _ in results}
    missed = sum(1 for _, _, found in results if not found)
    return vectors, len(files) / elapsed, missed


def scores_of(vectors: dict, pairs: list[tuple[str, str, bool]], kind: str) -> np.ndarray:
    """Score per pair (higher = more alike): cosine, or -distance for the reference."""
    out = []
    for a, b, _ in pairs:
        va, vb = vectors[a], vectors[b]
        if kind == "face_recognition":
            out.append(-float(np.linalg.norm(va - vb)))  # its own rule: distance < 0.6
        else:
            out.append(float(np.dot(va, vb)))  # cosine; the API's similarity is monotone in it
    return np.asarray(out)


def best_threshold(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """The cut that maximises accuracy, and that accuracy."""
    cands = np.unique(scores)
    mids = np.concatenate([[cands[0] - 1e-6], (cands[:-1] + cands[1:]) / 2, [cands[-1] + 1e-6]])
    accs = [float(np.mean((scores >= t) == labels)) for t in mids]
    i = int(np.argmax(accs))
    return float(mids[i]), accs[i]


def ten_fold(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """LFW protocol: threshold fitted on 9 folds, accuracy on the 10th; mean and std."""
    folds = np.array_split(np.arange(len(scores)), 10)
    accs = []
    for k in range(10):
        train = np.concatenate([f for i, f in enumerate(folds) if i != k])
        t, _ = best_threshold(scores[train], labels[train])
        accs.append(float(np.mean((scores[folds[k]] >= t) == labels[folds[k]])))
    return float(np.mean(accs)), float(np.std(accs))


def fit_logistic_n(features: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Fit P(same) = sigmoid(w·x + b) by Newton's method; return (w..., b)."""
    x = np.concatenate([features, np.ones((len(features), 1))], 1)
    y = labels.astype(np.float64)
    w = np.zeros(x.shape[1])
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-x @ w))
        grad = x.T @ (p - y)
        hess = x.T @ (x * (p * (1 - p))[:, None]) + 1e-9 * np.eye(x.shape[1])
        w -= np.linalg.solve(hess, grad)
    return w


def fit_logistic(cosines: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Fit P(same) = sigmoid(a·cos + b) (the similarity calibration)."""
    w = fit_logistic_n(cosines[:, None], labels)
    return float(w[0]), float(w[1])


def fit_fusion(vectors: dict, pairs: list[tuple[str, str, bool]], labels: np.ndarray) -> dict:
    """The fused space's weights from a logistic fit on its parts' cosines, and its vectors
    re-fused with them (so the calibration printed next is the one for these weights).

    sigmoid(a1·cos1 + a2·cos2 + b) = sigmoid((a1 + a2)·(α·cos1 + (1 − α)·cos2) + b) with
    α = a1 / (a1 + a2): the weighted sum is the raw score, the rest is its calibration.
    """
    from faceplane.engine.embed import part_vectors
    from faceplane.engine.models.registry import FUSED_SPACE, get_space

    names = sorted(vectors)
    parts = part_vectors(FUSED_SPACE, np.stack([vectors[n] for n in names]))
    order = [p.space for p in get_space(FUSED_SPACE).parts]
    where = {n: i for i, n in enumerate(names)}
    cos = np.array(
        [[float(parts[sp][where[a]] @ parts[sp][where[b]]) for sp in order] for a, b, _ in pairs]
    )
    w = fit_logistic_n(cos, labels)
    fitted = float(w[0] / (w[0] + w[1]))
    alpha = round(fitted, 2)  # shipped to two decimals; the calibration below is for it
    print(
        f"fusion: logistic on ({', '.join(order)}) cosines = {w[0]:.3f}, {w[1]:.3f}, "
        f"bias {w[2]:+.3f} → dlib weight {fitted:.4f}; weights ({alpha:.2f}, {1 - alpha:.2f}) "
        "(registry FUSED_WEIGHTS)"
    )
    weights = (alpha, 1 - alpha)
    fused = np.concatenate(
        [parts[sp] * np.sqrt(wt) for sp, wt in zip(order, weights, strict=True)], axis=1
    )
    return {n: fused[i] for i, n in enumerate(names)}


def print_far_table(kind: str, vectors: dict) -> None:
    """Cosine thresholds by false-accept rate over every cross-identity pair of the images."""
    names = sorted(vectors)
    who = np.array([n.split("/")[0] for n in names])
    mat = np.stack([vectors[n] for n in names]).astype(np.float64)
    sims = mat @ mat.T
    upper = np.triu_indices(len(names), 1)
    same = who[upper[0]] == who[upper[1]]
    impostor = np.sort(sims[upper][~same])[::-1]
    genuine = sims[upper][same]
    print(f"{kind}: {len(impostor)} impostor and {len(genuine)} genuine pairs")
    for far in (1e-3, 1e-4, 1e-5, 1e-6):
        idx = int(far * len(impostor))
        if idx < 1:
            continue
        cut = float(impostor[idx - 1])
        print(f"  far {far:.0e}: cosine {cut:.4f}  TAR {float(np.mean(genuine > cut)):.4f}")


def tar_at_far(scores: np.ndarray, labels: np.ndarray, far: float) -> float:
    """True-accept rate at the threshold where at most `far` of impostor pairs pass."""
    impostors = np.sort(scores[~labels])[::-1]
    allowed = int(np.floor(far * len(impostors)))
    threshold = impostors[allowed] if allowed < len(impostors) else -np.inf
    return float(np.mean(scores[labels] > threshold))


def main() -> None:
    """Run the benchmark and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=Path, help="LFW pairs file (default View 1 pairsDevTest.txt)")
    ap.add_argument(
        "--engines",
        default="onnx+none,onnx+flip,mobilefacenet+none,mobilefacenet+flip,fused+none,"
        "fused+flip,face_recognition",
    )
    ap.add_argument("--detector", help="Faceplane's detector (default: the server's)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--limit", type=int, default=0, help="use only the first N pairs of each kind")
    ap.add_argument("--calibrate", action="store_true", help="print the accuracy-maximising cut")
    args = ap.parse_args()
    lfw = testdata_dir() / "lfw_view1"
    pairs_path = args.pairs or lfw / "pairsDevTest.txt"
    pairs = read_pairs(pairs_path)
    if args.limit:
        same = [p for p in pairs if p[2]][: args.limit]
        diff = [p for p in pairs if not p[2]][: args.limit]
        pairs = same + diff
    labels = np.array([p[2] for p in pairs])
    files = sorted({p[0] for p in pairs} | {p[1] for p in pairs})
    root = lfw / "images"
    print(f"{pairs_path.name}: {len(pairs)} pairs, {len(files)} images, {args.workers} processes")
    rows = []
    for kind in args.engines.split(","):
        vectors, rate, missed = embed_all(kind, root, files, args.workers, args.detector)
        scores = scores_of(vectors, pairs, kind)
        mean, std = ten_fold(scores, labels)
        cut, _ = best_threshold(scores, labels)
        tar = tar_at_far(scores, labels, 1e-3)
        label = (
            "face_recognition 1.3.0 (reference)"
            if kind == "face_recognition"
            else f"faceplane ({kind}, {args.detector or 'default'} detector)"
        )
        rows.append(
            [
                label,
                f"{mean * 100:.2f} ± {std * 100:.2f}",
                f"{tar * 100:.1f}",
                f"{rate:.1f}",
                str(missed),
                f"{cut:.4f}",
            ]
        )
        if args.calibrate and kind.startswith("fused"):
            vectors = fit_fusion(vectors, pairs, labels)
        if args.calibrate and kind != "face_recognition":
            cos = np.array([float(np.dot(vectors[a], vectors[b])) for a, b, _ in pairs])
            slope, bias = fit_logistic(cos, labels)
            cos_cut, acc_cos = best_threshold(cos, labels)
            print_far_table(kind, vectors)
            print(
                f"{kind}: cosine cut {cos_cut:.4f} (accuracy {acc_cos:.4f}); "
                f"logistic similarity = sigmoid({slope:.3f}·cos {bias:+.3f}), "
                f"0.5 at cos {-bias / slope:.4f}"
            )
    print_table(
        ["engine", "10-fold accuracy %", "TAR@FAR=1e-3 %", "images/s", "no face", "best cut"], rows
    )


if __name__ == "__main__":
    main()
