"""engine.similarity: the FAR-calibrated similarity scale, and the tables shipped with it."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from faceplane.engine.models.registry import SPACE_SETTINGS, TTA_MODES, calibration
from faceplane.engine.similarity import (
    DECADE_FARS,
    Calibration,
    Knot,
    fit_calibration,
    raw_score,
    scale_similarity,
    table_json,
    tables_from_json,
)


def synthetic(seed: int = 0, n_imp: int = 300_000) -> tuple[np.ndarray, np.ndarray]:
    """Genuine and impostor scores shaped like a face embedder's cosines."""
    rng = np.random.default_rng(seed)
    impostor = np.clip(rng.normal(0.82, 0.035, n_imp), -1, 1)
    genuine = np.clip(rng.normal(0.95, 0.015, 5000), -1, 1)
    return genuine, impostor


@pytest.fixture(scope="module")
def fitted() -> tuple[Calibration, np.ndarray, np.ndarray]:
    genuine, impostor = synthetic()
    return fit_calibration("test_space", "flip", genuine, impostor), genuine, impostor


def test_the_scale_reads_far_decades_as_tenths() -> None:
    assert [round(scale_similarity(f), 9) for f in (1e-3, 1e-4, 1e-5, 1e-6)] == [
        0.6,
        0.7,
        0.8,
        0.9,
    ]


def test_knots_land_where_claimed(fitted: tuple[Calibration, np.ndarray, np.ndarray]) -> None:
    cal, _, _ = fitted
    for far in DECADE_FARS:
        score = cal.score_for_far(far)
        assert cal.far(score) == pytest.approx(far, rel=1e-6)
        assert cal.similarity(score) == pytest.approx(scale_similarity(far), abs=1e-9)
        assert cal.threshold(far) == pytest.approx(0.3 + 0.1 * -math.log10(far), abs=1e-9)
    assert cal.knots[0].similarity == 0.0 and cal.knots[-1].similarity == 1.0


def test_measured_knots_hold_on_the_fitting_scores(
    fitted: tuple[Calibration, np.ndarray, np.ndarray],
) -> None:
    cal, _, impostor = fitted
    for knot in cal.knots:
        if knot.source == "measured":
            share = float(np.mean(impostor >= knot.score))
            assert share == pytest.approx(knot.far, rel=0.05, abs=2 / len(impostor))


def test_small_fars_are_extrapolated_by_the_tail_model_and_say_so(
    fitted: tuple[Calibration, np.ndarray, np.ndarray],
) -> None:
    cal, _, _ = fitted
    by_far = {k.far: k for k in cal.knots}
    # 300k impostor pairs: 1e-4 has 30 pairs above it (< 50), so it and smaller are modelled.
    assert by_far[1e-3].source == "measured"
    assert {by_far[f].source for f in (1e-4, 1e-5, 1e-6)} == {"tail model"}
    # The tail starts no lower than the FAR 1e-3 quantile: 300 of 300k pairs lie above it.
    assert cal.meta["tail_model"]["exceedances"] == 300
    # A Gaussian tail falls faster than the exponential model: the claim errs on the safe side.
    for far in (1e-4, 1e-5, 1e-6):
        true_far = 0.5 * math.erfc((cal.score_for_far(far) - 0.82) / (0.035 * math.sqrt(2)))
        assert true_far <= far


def test_similarity_and_far_are_monotone(
    fitted: tuple[Calibration, np.ndarray, np.ndarray],
) -> None:
    cal, _, _ = fitted
    scores = np.linspace(-1.0, 1.0, 20001)
    sims, fars = cal.similarity(scores), cal.far(scores)
    assert np.all(np.diff(sims) >= 0) and np.all(np.diff(fars) <= 0)
    assert sims[0] == 0.0 and sims[-1] == 1.0 and fars[0] == 1.0
    assert np.all((sims >= 0) & (sims <= 1)) and np.all((fars > 0) & (fars <= 1))
    # Strictly increasing inside: no two scores read the same.
    assert len(np.unique(sims)) == len(sims)


def test_far_and_score_for_far_are_inverse(
    fitted: tuple[Calibration, np.ndarray, np.ndarray],
) -> None:
    cal, _, _ = fitted
    for far in np.logspace(0, -6, 61):
        assert cal.far(cal.score_for_far(float(far))) == pytest.approx(far, rel=1e-6)
    for score in np.linspace(0.5, 0.99, 50):
        assert cal.score_for_far(cal.far(float(score))) == pytest.approx(score, abs=1e-9)
    for sim in np.linspace(0, 1, 21):
        assert cal.similarity(cal.score_for_similarity(float(sim))) == pytest.approx(sim)


def test_a_far_below_the_table_or_not_a_rate_is_refused(
    fitted: tuple[Calibration, np.ndarray, np.ndarray],
) -> None:
    cal, _, _ = fitted
    for bad in (1e-7, 0.0, -0.1, 1.5, float("nan")):
        with pytest.raises(ValueError):
            cal.score_for_far(bad)


def test_a_table_that_is_not_monotone_is_refused() -> None:
    knots = (
        Knot(-1.0, 1.0, 0.0, "end"),
        Knot(0.9, 1e-3, 0.6, "measured"),
        Knot(0.8, 1e-4, 0.7, "measured"),
        Knot(1.0, 1e-9, 1.0, "end"),
    )
    with pytest.raises(ValueError, match="increase"):
        Calibration("s", "flip", knots, 1e-4)


def test_json_round_trip(fitted: tuple[Calibration, np.ndarray, np.ndarray]) -> None:
    cal, _, _ = fitted
    text = json.dumps(table_json("test_space", {"flip": cal}, {"fitted_by": "test"}))
    again = tables_from_json(json.loads(text))["flip"]
    scores = np.linspace(-1, 1, 1001)
    assert np.allclose(again.similarity(scores), cal.similarity(scores), atol=1e-5)
    assert np.allclose(np.log10(again.far(scores)), np.log10(cal.far(scores)), atol=1e-4)
    assert again.min_far == cal.min_far == 1e-6


def test_raw_score_is_the_cosine_of_unit_vectors() -> None:
    a, b = np.array([3.0, 4.0]), np.array([4.0, 3.0])
    cos, dist = raw_score(a, b)
    assert cos == pytest.approx(24 / 25) and dist == pytest.approx(math.sqrt(2 - 48 / 25))
    assert raw_score(a, 2 * a) == pytest.approx((1.0, 0.0), abs=1e-7)


@pytest.mark.parametrize("space", sorted(SPACE_SETTINGS))
@pytest.mark.parametrize("mode", TTA_MODES)
def test_every_space_ships_a_table_for_every_mode(space: str, mode: str) -> None:
    cal = calibration(space, mode)
    assert cal.space == space and cal.mode == mode and cal.min_far == 1e-6
    by_far = {k.far: k for k in cal.knots}
    for far in DECADE_FARS:
        assert by_far[far].similarity == pytest.approx(scale_similarity(far))
        assert by_far[far].source in ("measured", "tail model")
    # The table says what it was fitted on, and which FARs it could not measure there.
    assert "pairsDevTrain" in cal.meta["data"] and cal.meta["impostor_pairs"] > 1_000_000
    assert cal.meta["smallest_measurable_far"] > 1e-6 and by_far[1e-6].source == "tail model"
