"""One similarity scale a person can read, built from the false-accept rate of a raw score.

Every embedding space has a raw score that is higher for more alike faces (the cosine of
unit vectors). A calibration table maps it, per space and test-time-augmentation mode, to

- `far(score)`: the share of different-person pairs that score at least this high (the
  false-accept rate a threshold at this score would have), and
- `similarity(score)` in [0, 1]: `0.3 + 0.1 · (−log10 FAR)` at every knot, so FAR 1e-3, 1e-4,
  1e-5 and 1e-6 sit at 0.6, 0.7, 0.8 and 0.9 in every space. Between knots both are
  interpolated (similarity linearly, FAR log-linearly in the score); below the lowest knot the
  similarity falls linearly to 0 at score −1, above the highest FAR knot it rises linearly to 1
  at score 1.

Both are monotone in the score, so a threshold on one is a threshold on the other:
`score_for_far(far)` inverts `far`, and `threshold(far)` is the similarity of that score.

The table is fitted (`fit_calibration`) from the scores of labelled genuine (same-person) and
impostor (different-person) pairs. A FAR is measured from the impostor scores where enough
impostor pairs lie above the knot (`min_count`); smaller FARs cannot be measured on the data
and come from a fitted tail model: an exponential tail (a generalised Pareto tail of shape 0)
above a high impostor quantile. On the face scores measured here the tail falls faster than
that (each decade of FAR is narrower than the one before: log-FAR is concave in the score),
so an exponential fitted where the tail starts puts the extrapolated thresholds on the safe
side (higher scores than the data's own sparse quantiles); bench/identify.py checks the
claimed FARs on people outside the calibration. Each knot says whether it was measured or
extrapolated.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

import numpy as np

# The FARs the scale is anchored on, and the similarity each one reads as.
SCALE_BASE = 0.3
SCALE_STEP = 0.1
DECADE_FARS = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
# Knots at FARs above 1e-1 (lower scores), so the bottom of the scale follows the impostor
# distribution too.
LOW_FARS = (0.99, 0.9, 0.5, 0.2)
SCORE_MIN, SCORE_MAX = -1.0, 1.0


def scale_similarity(far: float) -> float:
    """The similarity a FAR reads as: 0.3 + 0.1 · (−log10 FAR) (FAR 1e-4 → 0.7)."""
    return SCALE_BASE + SCALE_STEP * -math.log10(far)


@dataclass(frozen=True)
class Knot:
    """One row of the table: a raw score, its FAR and its similarity."""

    score: float
    far: float
    similarity: float
    source: str  # "measured", "tail model" or "end" (the scale's ends, score ±1)
    tar: float | None = None  # share of genuine pairs at or above the score, when fitted

    def as_dict(self) -> dict[str, Any]:
        """The JSON form of the knot."""
        out: dict[str, Any] = {
            "score": round(self.score, 6),
            "far": float(f"{self.far:.6g}"),
            "similarity": round(self.similarity, 6),
            "source": self.source,
        }
        if self.tar is not None:
            out["tar"] = round(self.tar, 6)
        return out


@dataclass(frozen=True)
class Calibration:
    """The scale of one embedding space and augmentation mode (see the module doc)."""

    space: str
    mode: str
    knots: tuple[Knot, ...]
    # The smallest FAR a threshold may be asked for: the last knot the table stands behind.
    min_far: float
    meta: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        scores = [k.score for k in self.knots]
        fars = [k.far for k in self.knots]
        sims = [k.similarity for k in self.knots]
        if len(self.knots) < 3:
            raise ValueError("a calibration needs at least three knots")
        if any(b <= a for a, b in itertools_pairs(scores)):
            raise ValueError(f"{self.space}/{self.mode}: knot scores must increase")
        if any(b >= a for a, b in itertools_pairs(fars)) or not 0 < fars[-1] <= fars[0] <= 1:
            raise ValueError(f"{self.space}/{self.mode}: knot FARs must decrease within (0, 1]")
        if any(b <= a for a, b in itertools_pairs(sims)) or sims[0] < 0 or sims[-1] > 1:
            raise ValueError(f"{self.space}/{self.mode}: knot similarities must increase in [0, 1]")
        if not fars[-1] < self.min_far <= fars[0]:
            raise ValueError(f"{self.space}/{self.mode}: min_far outside the table")

    @property
    def _x(self) -> np.ndarray:
        return np.array([k.score for k in self.knots])

    @property
    def _log_far(self) -> np.ndarray:
        return np.log10(np.array([k.far for k in self.knots]))

    @overload
    def similarity(self, score: float) -> float: ...
    @overload
    def similarity(self, score: np.ndarray) -> np.ndarray: ...
    def similarity(self, score: float | np.ndarray) -> float | np.ndarray:
        """The similarity in [0, 1] of a raw score (or an array of them)."""
        out = np.interp(score, self._x, [k.similarity for k in self.knots])
        return float(out) if np.ndim(out) == 0 else np.asarray(out)

    @overload
    def far(self, score: float) -> float: ...
    @overload
    def far(self, score: np.ndarray) -> np.ndarray: ...
    def far(self, score: float | np.ndarray) -> float | np.ndarray:
        """The false-accept rate of a threshold at this raw score (or array of scores)."""
        out = np.power(10.0, np.interp(score, self._x, self._log_far))
        return float(out) if np.ndim(out) == 0 else np.asarray(out)

    def score_for_far(self, far: float) -> float:
        """The raw score whose FAR is `far` (the inverse of `far`).

        ValueError when `far` is outside (0, 1] or below `min_far` (not calibrated).
        """
        if not (0 < far <= 1) or not math.isfinite(far):
            raise ValueError(f"far must be in (0, 1], not {far!r}")
        if far < self.min_far * (1 - 1e-9):
            raise ValueError(f"far={far:g} is below the smallest calibrated FAR {self.min_far:g}")
        # log FAR decreases with the score: interpolate on the reversed (increasing) axis.
        return float(np.interp(-math.log10(far), -self._log_far, self._x))

    def score_for_similarity(self, similarity: float) -> float:
        """The raw score of a similarity (the inverse of `similarity`, clipped to [0, 1])."""
        sims = [k.similarity for k in self.knots]
        return float(np.interp(min(max(similarity, 0.0), 1.0), sims, self._x))

    def threshold(self, far: float) -> float:
        """The similarity threshold for a FAR (FAR 1e-4 → 0.7 within the table)."""
        return self.similarity(self.score_for_far(far))

    def as_dict(self) -> dict[str, Any]:
        """The JSON form of one mode's table."""
        return {
            "min_far": self.min_far,
            "knots": [k.as_dict() for k in self.knots],
            **dict(self.meta),
        }

    @classmethod
    def from_dict(cls, space: str, mode: str, data: Mapping[str, Any]) -> Calibration:
        """A table from its JSON form (`as_dict`)."""
        knots = tuple(
            Knot(
                score=float(k["score"]),
                far=float(k["far"]),
                similarity=float(k["similarity"]),
                source=str(k["source"]),
                tar=None if k.get("tar") is None else float(k["tar"]),
            )
            for k in data["knots"]
        )
        meta = {k: v for k, v in data.items() if k not in ("knots", "min_far")}
        return cls(space, mode, knots, float(data["min_far"]), meta)


def itertools_pairs(values: Sequence[float]) -> list[tuple[float, float]]:
    """Consecutive pairs of a sequence."""
    return list(itertools.pairwise(values))


def _empirical_score(impostor_desc: np.ndarray, far: float) -> float:
    """The score above which a share `far` of the (descending) impostor scores lie."""
    n = len(impostor_desc)
    k = far * n
    lo = math.floor(k)
    # Midway between the k-th and (k+1)-th highest impostor scores (a tie-free cut).
    upper = impostor_desc[max(lo - 1, 0)]
    lower = impostor_desc[min(lo, n - 1)]
    return float((upper + lower) / 2)


@dataclass(frozen=True)
class TailModel:
    """An exponential impostor tail: FAR(s) = far_u · exp(−(s − u) / scale) for s ≥ u."""

    u: float
    far_u: float
    scale: float
    exceedances: int

    def score_for_far(self, far: float) -> float:
        """The score of a FAR at or below far_u."""
        return self.u + self.scale * math.log(self.far_u / far)

    def far(self, score: float) -> float:
        """The FAR of a score at or above u."""
        return self.far_u * math.exp(-(score - self.u) / self.scale)


def fit_tail(impostor_desc: np.ndarray, far_u: float) -> TailModel:
    """Fit the exponential tail (maximum likelihood) above the FAR `far_u` quantile."""
    u = _empirical_score(impostor_desc, far_u)
    above = impostor_desc[impostor_desc > u]
    if len(above) < 10:
        raise ValueError(f"too few impostor scores above the FAR {far_u:g} quantile to fit a tail")
    scale = float(np.mean(above - u))
    return TailModel(u, len(above) / len(impostor_desc), scale, len(above))


def fit_calibration(
    space: str,
    mode: str,
    genuine: np.ndarray,
    impostor: np.ndarray,
    *,
    min_count: int = 50,
    tail_exceedances: int = 1000,
    meta: Mapping[str, Any] | None = None,
) -> Calibration:
    """Fit the table of one space and mode from genuine and impostor pair scores.

    A knot's FAR is measured when at least `min_count` impostor pairs lie above it; otherwise
    it comes from the exponential tail fitted above the highest `tail_exceedances` impostor
    scores (at most the FAR 1e-3 quantile, so the tail does not start in the body when there
    are enough pairs; at least `min_count` scores when there are few).
    """
    imp = np.sort(np.asarray(impostor, dtype=np.float64))[::-1]
    gen = np.asarray(genuine, dtype=np.float64)
    n = len(imp)
    if n < 1000 or len(gen) < 10:
        raise ValueError(f"too few pairs to calibrate ({len(gen)} genuine, {n} impostor)")
    # Few pairs (a small check, not a shipped table): the tail starts where the measurable
    # knots end, so every knot is either measured or modelled on at least `min_count` pairs.
    tail = fit_tail(imp, max(min(1e-3, tail_exceedances / n), min_count / n))
    rows: list[Knot] = []
    for far in (*LOW_FARS, *DECADE_FARS):
        measured = far * n >= min_count
        score = _empirical_score(imp, far) if measured else tail.score_for_far(far)
        if rows and score <= rows[-1].score:  # ties in a coarse body: keep the scale strict
            score = rows[-1].score + 1e-6
        rows.append(
            Knot(
                score=score,
                far=far,
                similarity=scale_similarity(far),
                source="measured" if measured else "tail model",
                tar=float(np.mean(gen >= score)),
            )
        )
    top = max(SCORE_MAX, rows[-1].score + 1e-6)
    # FAR at the top of the score range, from the tail model (it is only ever reported).
    far_top = min(tail.far(top), rows[-1].far / 10)
    knots = (
        Knot(SCORE_MIN, 1.0, 0.0, "end", tar=1.0),
        *rows,
        Knot(top, far_top, 1.0, "end", tar=float(np.mean(gen >= top))),
    )
    info: dict[str, Any] = dict(meta or {})
    info.update(
        {
            "genuine_pairs": len(gen),
            "impostor_pairs": int(n),
            "smallest_measurable_far": float(f"{min_count / n:.3g}"),
            "min_count": min_count,
            "tail_model": {
                "kind": "exponential (generalised Pareto, shape 0), maximum likelihood",
                "u": round(tail.u, 6),
                "far_u": float(f"{tail.far_u:.6g}"),
                "scale": round(tail.scale, 6),
                "exceedances": tail.exceedances,
            },
        }
    )
    return Calibration(space, mode, knots, min_far=DECADE_FARS[-1], meta=info)


def table_json(space: str, tables: Mapping[str, Calibration], meta: Mapping[str, Any]) -> dict:
    """The shipped JSON file of one space: its modes' tables and how they were made."""
    return {
        "space": space,
        **dict(meta),
        "modes": {mode: cal.as_dict() for mode, cal in sorted(tables.items())},
    }


def tables_from_json(data: Mapping[str, Any]) -> dict[str, Calibration]:
    """The tables (by mode) of one space's JSON file."""
    space = str(data["space"])
    return {mode: Calibration.from_dict(space, mode, t) for mode, t in data["modes"].items()}


def raw_score(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(cosine, euclidean distance in [0, 2]) of two descriptors, once each is L2-normalised:
    the raw score every calibration table is indexed by, and the distance it implies."""
    va = np.asarray(a, dtype=np.float64).reshape(-1)
    vb = np.asarray(b, dtype=np.float64).reshape(-1)
    va = va / max(float(np.linalg.norm(va)), 1e-12)
    vb = vb / max(float(np.linalg.norm(vb)), 1e-12)
    cos = float(np.clip(np.dot(va, vb), -1.0, 1.0))
    return cos, math.sqrt(max(0.0, 2.0 - 2.0 * cos))
