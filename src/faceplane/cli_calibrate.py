"""`faceplane models calibrate`: re-fit the similarity tables on LFW View 1 DevTrain.

    faceplane models calibrate --lfw .../lfw_view1 [--pairs pairsDevTrain.txt] [--write]

For every embedding space the server can produce (registry.SPACE_SETTINGS, models installed)
and every augmentation mode, each image named by the pairs file goes through the server's own
pipeline (decode, detect, align, embed) in `--workers` processes; the face nearest the image
centre is LFW's subject, and an image without a detected face is left out (the server would
answer FACE_NOT_FOUND). Genuine pairs: every two images of one person; impostor pairs: every
two images of different people. `engine.similarity.fit_calibration` turns their scores into
the table; `--write` stores it as the package's calibration/<space>.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from faceplane.settings import Settings

_WORKER: Any = None


def _worker_init(overrides: dict[str, Any]) -> None:
    global _WORKER
    from faceplane.runtime import Runtime

    data_dir = tempfile.mkdtemp(prefix="faceplane-calibrate-")
    rt = Runtime.open(Settings(**{**overrides, "data_dir": data_dir, "inference_threads": 1}))
    _WORKER = (rt, rt.analyse_options(embeddings=True))


def _worker_embed(path: str) -> tuple[str, np.ndarray | None]:
    """The unit embedding of the face nearest the centre of one image (None: no face)."""
    from faceplane.engine.faces import analyse_image
    from faceplane.engine.image import decode_image

    rt, opts = _WORKER
    rgb = decode_image(Path(path).read_bytes(), rt.limits).rgb
    faces = analyse_image(rt.pool, rgb, opts).faces
    if not faces:
        return path, None
    h, w = rgb.shape[:2]
    face = min(
        faces,
        key=lambda f: (
            (f.detection.x + f.detection.w / 2 - w / 2) ** 2
            + (f.detection.y + f.detection.h / 2 - h / 2) ** 2
        ),
    )
    return path, face.embedding


def read_pair_images(pairs: Path) -> list[str]:
    """Every image (relative to images/) an LFW pairs file names."""
    names: set[str] = set()
    for line in pairs.read_text().splitlines()[1:]:
        parts = line.split()
        if len(parts) == 3:
            who, i, j = parts
            names |= {f"{who}/{who}_{int(i):04d}.jpg", f"{who}/{who}_{int(j):04d}.jpg"}
        elif len(parts) == 4:
            a, i, b, j = parts
            names |= {f"{a}/{a}_{int(i):04d}.jpg", f"{b}/{b}_{int(j):04d}.jpg"}
    return sorted(names)


def embed_images(
    overrides: dict[str, Any], root: Path, files: list[str], workers: int
) -> tuple[dict[str, np.ndarray], float]:
    """Embed every image in `workers` processes: vectors by file, and images/s."""
    ctx = mp.get_context("spawn")
    with ctx.Pool(workers, initializer=_worker_init, initargs=(overrides,)) as pool:
        pool.map(_worker_embed, [str(root / files[0])] * workers, chunksize=1)  # warm up
        start = time.perf_counter()
        out = pool.map(_worker_embed, [str(root / f) for f in files], chunksize=8)
        rate = len(files) / (time.perf_counter() - start)
    vectors = {Path(p).relative_to(root).as_posix(): v for p, v in out if v is not None}
    return vectors, rate


def pair_scores(vectors: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(genuine, impostor) raw scores over every pair of images: the cosine of unit vectors."""
    names = sorted(vectors)
    who = np.array([n.split("/")[0] for n in names])
    mat = np.stack([vectors[n] for n in names]).astype(np.float64)
    gen, imp = [], []
    for i in range(len(names) - 1):
        scores = mat[i + 1 :] @ mat[i]
        same = who[i + 1 :] == who[i]
        gen.append(scores[same])
        imp.append(scores[~same])
    return np.concatenate(gen), np.concatenate(imp)


def calibration_dir() -> Path:
    """The package's calibration folder (where the registry loads the tables from)."""
    from faceplane.engine.models.registry import CALIBRATION_FOLDER, CALIBRATION_PACKAGE

    return Path(str(resources.files(CALIBRATION_PACKAGE))) / CALIBRATION_FOLDER


def cmd_calibrate(args: argparse.Namespace, settings: Settings) -> int:
    """Fit (and with --write store) the table of every producible space and mode."""
    from faceplane.engine.models.pool import ModelPool
    from faceplane.engine.models.registry import SPACE_SETTINGS, TTA_MODES, space_of
    from faceplane.engine.similarity import fit_calibration, table_json
    from faceplane.errors import FaceplaneError

    if not args.lfw:
        print("error: --lfw <lfw_view1 folder> is required", file=sys.stderr)
        return 2
    lfw = Path(args.lfw)
    pairs = lfw / args.pairs if not Path(args.pairs).is_absolute() else Path(args.pairs)
    root = lfw / "images"
    modes = args.modes.split(",") if args.modes else list(TTA_MODES)
    wanted = args.spaces.split(",") if args.spaces else list(SPACE_SETTINGS)
    unknown = [s for s in wanted if s not in SPACE_SETTINGS] + [
        m for m in modes if m not in TTA_MODES
    ]
    if unknown:
        print(
            f"error: unknown {', '.join(unknown)}; spaces: {', '.join(SPACE_SETTINGS)}, "
            f"modes: {', '.join(TTA_MODES)}",
            file=sys.stderr,
        )
        return 2
    if not pairs.is_file() or not root.is_dir():
        print(f"error: {pairs} or {root} not found", file=sys.stderr)
        return 2
    files = read_pair_images(pairs)
    out_dir = Path(args.out) if args.out else calibration_dir()
    status = 0
    for space in wanted:
        overrides: dict[str, Any] = {"models_dir": settings.models_dir, **SPACE_SETTINGS[space]}
        try:
            pool = ModelPool(settings.models_dir, 1, str(overrides.get("embedder", "auto")))
            pool.embedder()
            made = space_of(pool.embedder_name())
        except FaceplaneError as exc:
            print(f"{space}: skipped ({exc.message})")
            status = 1
            continue
        if made != space:
            print(f"{space}: skipped (those settings make {made})")
            status = 1
            continue
        tables = {}
        for mode in modes:
            vectors, rate = embed_images(
                {**overrides, "embed_tta": mode}, root, files, args.workers
            )
            genuine, impostor = pair_scores(vectors)
            meta = {
                "data": f"LFW View 1 {pairs.name}: {len(files)} images, "
                f"{len(files) - len(vectors)} without a detected face (left out)",
                "score": "cosine of the unit embeddings",
            }
            cal = fit_calibration(space, mode, genuine, impostor, meta=meta)
            tables[mode] = cal
            print(
                f"\n{space} / {mode}: {len(vectors)} faces, {len(genuine)} genuine and "
                f"{len(impostor)} impostor pairs, {rate:.1f} images/s"
            )
            print("| FAR | score | similarity | source | TAR on the same data |")
            print("|---|---|---|---|---|")
            for k in cal.knots:
                tar = "-" if k.tar is None else f"{k.tar * 100:.2f}%"
                print(f"| {k.far:.3g} | {k.score:.4f} | {k.similarity:.3f} | {k.source} | {tar} |")
        body = table_json(
            space,
            tables,
            {
                "fitted_by": f"faceplane models calibrate --lfw <lfw_view1> --pairs {pairs.name}",
                "scale": "similarity = 0.3 + 0.1 * -log10(FAR) at every knot (FAR 1e-3, 1e-4, "
                "1e-5, 1e-6 -> 0.6, 0.7, 0.8, 0.9); linear in the score between knots, and to 0 "
                "at score -1 and 1 at score 1; FAR is log-linear in the score between knots",
                "extrapolation": "a FAR that fewer than min_count impostor pairs reach cannot be "
                "measured on these pairs: those knots (source 'tail model') come from an "
                "exponential tail fitted to the highest impostor scores; requests below min_far "
                "are refused",
            },
        )
        if args.write:
            path = out_dir / f"{space}.json"
            if args.modes and path.is_file():  # refit some modes: keep the others
                old = json.loads(path.read_text())
                body["modes"] = {**old.get("modes", {}), **body["modes"]}
            out_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(body, indent=1) + "\n")
            print(f"wrote {path}")
    return status


def add_calibrate_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `faceplane models calibrate`."""
    parser.add_argument("--lfw", help="calibrate: the LFW View 1 folder (images/, pairs files)")
    parser.add_argument(
        "--pairs", default="pairsDevTrain.txt", help="calibrate: pairs file naming the images"
    )
    parser.add_argument("--spaces", help="calibrate: comma-separated spaces (default: all)")
    parser.add_argument("--modes", help="calibrate: comma-separated modes (default: all)")
    parser.add_argument("--workers", type=int, default=2, help="calibrate: processes")
    parser.add_argument("--write", action="store_true", help="calibrate: store the tables")
    parser.add_argument("--out", help="calibrate: folder to write to (default: the package's)")
