"""Faces of LFW View 1 with their quality components and embeddings, for the quality score.

Shared by `train/quality_score.py` (fits the unified score on DevTrain) and `bench/quality.py`
(error-versus-discard curves on DevTest). Each image is analysed by the server's own pipeline
(default settings: RetinaFace, face mesh, the fused embedding space, flip augmentation); the
face nearest the centre is LFW's subject. An image without a detected face keeps an embedding
of its central 100×100 box (as `bench/lfw.py` does) and no components.

Training can add degraded copies of each clean image (`variants`): blur, motion blur, darkness,
over-exposure, JPEG, a small face, side light, noise, sunglasses, a mask, a hand on a cheek, a
face cut by the frame. Each copy's kind and strength are drawn from a generator seeded by the
file name, so a run is reproducible. The copies are placed with the clean face's keypoints.
"""

from __future__ import annotations

import hashlib
import io
import multiprocessing as mp
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lfw import central_box_embedding, central_face, read_pairs

_RT: Any = None
_OPTS: Any = None

# Bump when `degrade` or what `_central` keeps changes: it keys the extraction cache.
EXTRACT_VERSION = "1"

KINDS = (
    "blur",
    "motion",
    "dark",
    "bright",
    "jpeg",
    "small",
    "sidelight",
    "noise",
    "sunglasses",
    "mask",
    "hand",
    "crop",
)


def lfw_root(testdata: Path) -> Path:
    """LFW View 1's folder inside the test data."""
    return testdata / "lfw_view1"


def pair_images(root: Path, split: str) -> tuple[list[tuple[str, str, bool]], list[str]]:
    """The pairs of `split` (DevTrain or DevTest) and the images they use, sorted."""
    pairs = read_pairs(root / f"pairs{split}.txt")
    files = sorted({a for a, _, _ in pairs} | {b for _, b, _ in pairs})
    return pairs, files


def person_images(root: Path, pairs: list[tuple[str, str, bool]]) -> list[str]:
    """Every image of the people in the genuine pairs (more genuine comparisons per face)."""
    people = sorted({a.split("/")[0] for a, _, same in pairs if same})
    return [
        p.relative_to(root / "images").as_posix()
        for name in people
        for p in sorted((root / "images" / name).glob("*.jpg"))
    ]


def flatten(quality: dict[str, Any]) -> dict[str, float]:
    """The numeric components of a face's `quality` object, nested ones as `group.key`."""
    out: dict[str, float] = {}
    for key, value in quality.items():
        if isinstance(value, bool) or key in ("issues", "reasons"):
            continue
        if isinstance(value, (int, float)):
            out[key] = float(value)
        elif isinstance(value, dict):
            for sub, v in value.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    out[f"{key}.{sub}"] = float(v)
    return out


def _rng(name: str) -> np.random.Generator:
    seed = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")
    return np.random.default_rng(seed)


def _jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=int(quality))
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def _ellipse(img: np.ndarray, centre: np.ndarray, axes: tuple[float, float], colour: Any) -> None:
    cx, cy = (round(v) for v in centre)
    cv2.ellipse(img, (cx, cy), (int(axes[0]), int(axes[1])), 0, 0, 360, colour, -1)


def degrade(rgb: np.ndarray, kps: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """A degraded copy of `rgb`; `kps` are RetinaFace's five keypoints of the face (right eye,
    left eye, nose tip, right and left mouth corner, image pixels)."""
    img = rgb.copy()
    h, w = img.shape[:2]
    ied = float(np.linalg.norm(kps[1] - kps[0]))
    f = img.astype(np.float32)
    if kind == "blur":
        return cv2.GaussianBlur(img, (0, 0), rng.uniform(1.0, 4.0))
    if kind == "motion":
        n = int(rng.integers(7, 21))
        k = np.zeros((n, n), np.float32)
        k[n // 2, :] = 1.0 / n
        rot = cv2.getRotationMatrix2D((n / 2 - 0.5, n / 2 - 0.5), rng.uniform(0, 180), 1.0)
        k = cv2.warpAffine(k, rot, (n, n))
        return cv2.filter2D(img, -1, k / max(float(k.sum()), 1e-6))
    if kind == "dark":
        gain, gamma = rng.uniform(0.08, 0.45), rng.uniform(1.0, 2.2)
        out = 255.0 * gain * (f / 255.0) ** gamma + rng.normal(0, 2.0, f.shape)
        return np.clip(out, 0, 255).astype(np.uint8)
    if kind == "bright":
        return np.clip(f * rng.uniform(1.6, 4.0) + rng.uniform(0, 60), 0, 255).astype(np.uint8)
    if kind == "jpeg":
        return _jpeg(img, int(rng.integers(2, 15)))
    if kind == "small":
        k = rng.uniform(12.0, 30.0) / max(ied, 1.0)
        return cv2.resize(img, (max(8, round(w * k)), max(8, round(h * k))), cv2.INTER_AREA)
    if kind == "sidelight":
        ramp = np.linspace(rng.uniform(0.1, 0.4), rng.uniform(1.1, 1.6), w, dtype=np.float32)
        if rng.random() < 0.5:
            ramp = ramp[::-1]
        return np.clip(f * ramp[None, :, None], 0, 255).astype(np.uint8)
    if kind == "noise":
        return np.clip(f + rng.normal(0, rng.uniform(12, 40), f.shape), 0, 255).astype(np.uint8)
    if kind == "sunglasses":
        shade = tuple(int(v) for v in rng.integers(0, 50, 3))
        for eye in kps[:2]:
            _ellipse(img, eye, (0.42 * ied, 0.3 * ied), shade)
        cv2.line(img, tuple(int(v) for v in kps[0]), tuple(int(v) for v in kps[1]), shade, 3)
        return img
    if kind == "mask":
        colour = tuple(int(v) for v in rng.integers(60, 255, 3))
        mouth = (kps[3] + kps[4]) / 2
        top = kps[2] - 0.45 * (kps[2] - (kps[0] + kps[1]) / 2)
        bottom = mouth + 0.9 * (mouth - kps[2])
        half = float(np.linalg.norm(bottom - top)) / 2
        _ellipse(img, (top + bottom) / 2, (0.95 * ied, half), colour)
        return img
    if kind == "hand":
        colour = tuple(int(v) for v in np.clip(np.median(img[int(kps[2][1]) :, :], (0, 1)), 0, 255))
        side = kps[3] if rng.random() < 0.5 else kps[4]
        centre = side + (side - kps[2]) * rng.uniform(0.3, 0.8)
        _ellipse(img, centre, (0.6 * ied, 0.9 * ied), colour)
        return img
    if kind == "crop":
        keep = rng.uniform(0.35, 0.7)  # the fraction of the face's width that stays
        cx = float(kps[:, 0].mean())
        cut = round(cx - ied * 1.1 + keep * 2.2 * ied)
        if rng.random() < 0.5:
            return img[:, : max(cut, 8)].copy()
        mirror = round(cx + ied * 1.1 - keep * 2.2 * ied)
        return img[:, min(max(mirror, 0), w - 8) :].copy()
    raise ValueError(f"unknown degradation {kind}")


def _init() -> None:
    global _RT, _OPTS
    from faceplane.runtime import Runtime
    from faceplane.settings import Settings

    _RT = Runtime.open(
        Settings(inference_threads=1, data_dir=tempfile.mkdtemp(prefix="faceplane-quality-"))
    )
    _OPTS = replace(_RT.analyse_options(embeddings=True), landmarks="mesh")


def _central(rgb: np.ndarray) -> dict[str, Any]:
    """The most central face's embedding and what its quality is measured from: box,
    keypoints and mesh (None without a face: then the embedding is of the central box)."""
    from faceplane.engine.faces import analyse_image

    face = central_face(analyse_image(_RT.pool, rgb, _OPTS).faces, rgb)
    if face is None:
        return {"embedding": central_box_embedding(_RT.pool, rgb, _OPTS.tta), "box": None}
    assert face.embedding is not None
    d = face.detection
    mesh = face.mesh
    return {
        "embedding": face.embedding,
        "box": (d.x, d.y, d.w, d.h),
        "keypoints": None if d.keypoints is None else np.asarray(d.keypoints),
        "keypoint_names": tuple(d.keypoint_names),
        "mesh": None if mesh is None else mesh.points,
        "presence": None if mesh is None else mesh.presence,
    }


def images_of(
    root: Path, rel: str, variants: int, limits: Any = None
) -> Iterator[tuple[str, np.ndarray]]:
    """The clean image `rel` and its `variants` degraded copies, as (kind, rgb); the copies
    need the clean face's keypoints, so they come after the caller has sent them back."""
    from faceplane.engine.image import ImageLimits, decode_image

    rgb = decode_image((root / "images" / rel).read_bytes(), limits or ImageLimits()).rgb
    kps = yield "clean", rgb
    if variants and kps is not None:
        rng = _rng(rel)
        for kind in rng.choice(KINDS, size=variants, replace=False):
            yield str(kind), degrade(rgb, kps, str(kind), rng)


def _work(job: tuple[str, str, int]) -> list[dict[str, Any]]:
    root, rel, variants = job
    out: list[dict[str, Any]] = []
    gen = images_of(Path(root), rel, variants, _RT.limits)
    kind, rgb = next(gen)
    while True:
        rec = _central(rgb)
        out.append({"file": rel, "variant": kind, **rec})
        try:
            kind, rgb = gen.send(rec.get("keypoints"))
        except StopIteration:
            return out


def extract(
    root: Path,
    files: Iterable[str],
    variants: int = 0,
    workers: int = 2,
    progress: Callable[[int, int], None] | None = None,
) -> list[dict[str, Any]]:
    """Analyse `files` (relative to images/) and `variants` degraded copies of each."""
    jobs = [(str(root), f, variants) for f in files]
    out: list[dict[str, Any]] = []
    ctx = mp.get_context("spawn")
    with ctx.Pool(workers, initializer=_init) as pool:
        for i, recs in enumerate(pool.imap(_work, jobs, chunksize=4), 1):
            out.extend(recs)
            if progress is not None:
                progress(i, len(jobs))
    return out


def cached_extract(
    cache: Path, root: Path, files: list[str], variants: int, workers: int
) -> list[dict[str, Any]]:
    """`extract`, kept in `cache` (a pickle) for a rerun with the same files, variants and
    pipeline code (the quality measures are not in it: `measure` recomputes them)."""
    import pickle

    src = Path(__file__).resolve().parents[1] / "src" / "faceplane" / "engine"
    code = EXTRACT_VERSION.encode() + b"".join(
        (src / f).read_bytes() for f in ("faces.py", "detect.py", "embed.py", "mesh.py")
    )
    key = hashlib.sha256(repr((files, variants)).encode() + code).hexdigest()[:16]
    path = cache.with_name(f"{cache.stem}-{key}.pkl")
    if path.exists():
        with path.open("rb") as fh:
            return list(pickle.load(fh))

    def show(i: int, n: int) -> None:
        if i % 100 == 0 or i == n:
            print(f"  {i}/{n} images", file=sys.stderr, flush=True)

    recs = extract(root, files, variants, workers, show)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        pickle.dump(recs, fh)
    return recs


def legacy_sharpness(rgb: np.ndarray, box: tuple[float, float, float, float]) -> float:
    """The sharpness Faceplane measured before the components (issue 13): Laplacian variance
    of the box resized to 112 px, as v / (v + 100): the bench's "today's sharpness"."""
    x, y, w, h = box
    x1, y1 = max(int(x), 0), max(int(y), 0)
    crop = rgb[y1 : min(int(y + h), rgb.shape[0]), x1 : min(int(x + w), rgb.shape[1])]
    if crop.size == 0:
        return 0.0
    gray = cv2.resize(cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY), (112, 112), cv2.INTER_AREA)
    v = float(cv2.Laplacian(gray, cv2.CV_64F).var())
    return v / (v + 100.0)


def measure(
    root: Path, recs: list[dict[str, Any]], progress: Callable[[int, int], None] | None = None
) -> list[dict[str, Any]]:
    """The quality of every extracted face (None without one), recomputed from the replayed
    image, its box, keypoints and mesh: the measures change without a new extraction."""
    from faceplane.engine.faces import MESH_MIN_PRESENCE
    from faceplane.engine.image import ImageLimits
    from faceplane.engine.models.pool import ModelPool
    from faceplane.engine.quality import QualityPolicy, measure_quality
    from faceplane.settings import default_models_dir

    canonical = ModelPool(default_models_dir()).face_geometry()
    by_file: dict[str, list[dict[str, Any]]] = {}
    for r in recs:
        by_file.setdefault(r["file"], []).append(r)
    out: list[dict[str, Any]] = []
    policy = QualityPolicy()
    for i, (rel, group) in enumerate(by_file.items(), 1):
        gen = images_of(root, rel, len(group) - 1, ImageLimits())
        kind, rgb = next(gen)
        for j, rec in enumerate(group):
            assert rec["variant"] == kind, (rel, rec["variant"], kind)
            q = None
            if rec.get("box") is not None:
                q = measure_quality(
                    rgb, rec["box"], rec["keypoints"], policy, rec["keypoint_names"],
                    rec["mesh"] if (rec["presence"] or 0) >= MESH_MIN_PRESENCE else None, canonical,
                )  # fmt: skip
            legacy = None if rec.get("box") is None else legacy_sharpness(rgb, rec["box"])
            out.append({**rec, "quality": q, "legacy_sharpness": legacy})
            if j + 1 < len(group):
                kind, rgb = gen.send(group[0]["keypoints"])
        if progress is not None:
            progress(i, len(by_file))
    return out


def edc(pair_q: np.ndarray, matched: np.ndarray, fractions: Iterable[float]) -> np.ndarray:
    """Error versus discard (ISO/IEC 29794-1): the FNMR of the genuine pairs kept after
    discarding each fraction of them with the lowest pair quality (ties in a stable order)."""
    order = np.argsort(pair_q, kind="stable")
    out = []
    for f in fractions:
        keep = order[round(f * len(order)) :]
        out.append(float(1.0 - matched[keep].mean()) if len(keep) else 0.0)
    return np.array(out)
