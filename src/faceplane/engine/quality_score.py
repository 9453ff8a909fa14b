"""The unified quality score: how likely a face is to be recognised, 0–100, from its components.

The model (`models/quality_score.json`, fitted by `train/quality_score.py` on LFW View 1
DevTrain) is a logistic model on a hinge basis of each component: for every input `x`, turned
into a badness `b = ±x` (`DIRECTIONS`), the features are `b` and `max(0, b − k)` at a few knots
`k` (quantiles on the training faces), standardised; the score is 100 · σ(c + w·f) with every
weight w ≤ 0, so a worse component never raises the score. Its target was, for each training
face, the soft share of its genuine comparisons with clean photos of the same person that clear the
FAR 1e-3 threshold of the fused embedding space. The same file carries the level thresholds
(LOW, MEDIUM, HIGH and AUTO, chosen on DevTrain's error-versus-discard curve).
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from faceplane.engine.quality import Quality

MODEL_PATH = Path(__file__).resolve().parent / "models" / "quality_score.json"


def score_inputs(q: Quality) -> dict[str, float | None]:
    """The model's inputs from one face's components (None: not measured, e.g. no mesh)."""
    occ = q.occlusion
    eyes = q.eye_openness
    return {
        "sharpness": q.sharpness,
        "brightness_offset": abs(q.brightness - 0.5),
        "under_exposure": q.under_exposure,
        "over_exposure": q.over_exposure,
        "uniformity": q.uniformity,
        "dynamic_range": q.dynamic_range,
        "compression": q.compression,
        "abs_yaw": abs(q.yaw),
        "abs_pitch": abs(q.pitch),
        "abs_roll": abs(q.roll),
        "log_inter_eye": math.log(max(q.inter_eye_px, 1.0)),
        "incomplete": q.incomplete,
        "eye_openness_min": None if eyes is None else min(eyes.values()),
        "mouth_openness": q.mouth_openness,
        "occlusion_eyes": None if occ is None else max(occ["left_eye"], occ["right_eye"]),
        "occlusion_nose": None if occ is None else occ["nose"],
        "occlusion_mouth": None if occ is None else occ["mouth"],
        "occlusion_chin": None if occ is None else occ["chin"],
        "occlusion_cheeks": None if occ is None else max(occ["left_cheek"], occ["right_cheek"]),
    }


# Which way each input hurts: +1 when a larger value is worse, −1 when a larger one is better.
DIRECTIONS = {
    "sharpness": -1,
    "brightness_offset": 1,
    "under_exposure": 1,
    "over_exposure": 1,
    "uniformity": -1,
    "dynamic_range": -1,
    "compression": 1,
    "abs_yaw": 1,
    "abs_pitch": 1,
    "abs_roll": 1,
    "log_inter_eye": -1,
    "incomplete": 1,
    "eye_openness_min": -1,
    "mouth_openness": 1,
    "occlusion_eyes": 1,
    "occlusion_nose": 1,
    "occlusion_mouth": 1,
    "occlusion_chin": 1,
    "occlusion_cheeks": 1,
}


def basis(values: np.ndarray, knots: list[float], sign: int = 1) -> np.ndarray:
    """The hinge basis of one input's badness b = sign · x: (n, 1 + len(knots)) columns b,
    max(0, b − k)... (knots on the badness scale). With every weight ≤ 0 the score can only
    fall as an input gets worse."""
    b = sign * values
    cols = [b] + [np.maximum(b - k, 0.0) for k in knots]
    return np.column_stack(cols)


def raw_features(inputs: list[dict[str, Any]], rows: list[dict[str, float | None]]) -> np.ndarray:
    """The unstandardised hinge features of input rows under the model's `inputs` specs
    (a missing value takes its spec's fill, every value is clipped to its range)."""
    cols = []
    for spec in inputs:
        name = spec["name"]
        x = np.array([spec["fill"] if r.get(name) is None else r[name] for r in rows], np.float64)
        cols.append(basis(np.clip(x, spec["min"], spec["max"]), spec["knots"], spec["sign"]))
    return np.hstack(cols)


class ScoreModel:
    """A fitted model (the JSON written by train/quality_score.py)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.inputs: list[dict[str, Any]] = list(data["inputs"])
        self.mean = np.asarray(data["mean"], np.float64)
        self.std = np.asarray(data["std"], np.float64)
        self.coef = np.asarray(data["coef"], np.float64)
        self.intercept = float(data["intercept"])
        self.levels: dict[str, float] = {k: float(v) for k, v in data["levels"].items()}

    def features(self, rows: list[dict[str, float | None]]) -> np.ndarray:
        """Standardised features of input rows (missing values take the training fill)."""
        return (raw_features(self.inputs, rows) - self.mean) / self.std

    def predict(self, rows: list[dict[str, float | None]]) -> np.ndarray:
        """Scores in [0, 100]."""
        z = self.features(rows) @ self.coef + self.intercept
        return 100.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))


@lru_cache(maxsize=1)
def load_model(path: str = str(MODEL_PATH)) -> ScoreModel | None:
    """The shipped model, or None when it is not there (before the first training)."""
    p = Path(path)
    if not p.exists():
        return None
    return ScoreModel(json.loads(p.read_text()))


def unified_score(q: Quality) -> float | None:
    """The face's unified score, 0–100 (None without a model)."""
    model = load_model()
    if model is None:
        return None
    return float(model.predict([score_inputs(q)])[0])


def level_thresholds() -> dict[str, float] | None:
    """The minimum score of each level (LOW, MEDIUM, HIGH, AUTO), None without a model."""
    model = load_model()
    return None if model is None else dict(model.levels)
