"""Face quality: the one policy's reasons, and the measures on real photos."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from faceplane.engine.faces import analyse_image
from faceplane.engine.quality import Quality, QualityPolicy
from faceplane.runtime import Runtime
from faceplane.settings import Settings

LFW = "lfw_view1/images"
GOOD = Quality(face_size=100, sharpness=0.5, brightness=0.5, yaw=5.0, pitch=-5.0, roll=0.0)


@pytest.fixture(scope="module")
def rt(tmp_path_factory: pytest.TempPathFactory) -> Runtime:
    return Runtime.open(Settings(data_dir=tmp_path_factory.mktemp("quality")))


def test_a_face_inside_every_limit_has_no_reasons() -> None:
    assert QualityPolicy().reasons(GOOD) == [] and QualityPolicy().issues(GOOD) == []


@pytest.mark.parametrize(
    ("change", "reason", "measure", "limit"),
    [
        ({"face_size": 59}, "too_small", "face_size", 60),
        ({"sharpness": 0.2}, "blurry", "sharpness", 0.25),
        ({"brightness": 0.1}, "too_dark", "brightness", 0.2),
        ({"brightness": 0.95}, "too_bright", "brightness", 0.9),
        ({"yaw": -40.0}, "not_frontal", "yaw", 35.0),
        ({"pitch": 36.0}, "not_frontal", "pitch", 35.0),
    ],
)
def test_each_limit_gives_its_reason_with_measure_value_and_limit(
    change: dict[str, float], reason: str, measure: str, limit: float
) -> None:
    quality = replace(GOOD, **change)
    [found] = QualityPolicy().reasons(quality)
    value = next(iter(change.values()))
    assert found == {"reason": reason, "measure": measure, "value": value, "limit": limit}
    assert QualityPolicy().issues(quality) == [reason]


def test_a_value_at_its_limit_passes() -> None:
    at_limits = Quality(60, 0.25, 0.9, 35.0, -35.0, 0.0)
    assert QualityPolicy().reasons(at_limits) == []


def test_a_face_turned_and_tilted_is_not_frontal_once_with_both_reasons() -> None:
    quality = replace(GOOD, yaw=50.0, pitch=-50.0, face_size=10)
    assert [r["measure"] for r in QualityPolicy().reasons(quality)] == ["face_size", "yaw", "pitch"]
    assert QualityPolicy().issues(quality) == ["too_small", "not_frontal"]


def test_the_runtime_builds_the_policy_from_its_settings(tmp_path: Path) -> None:
    rt = Runtime.open(
        Settings(data_dir=tmp_path, quality_min_face_px=80, quality_max_pitch_deg=20.0)
    )
    policy = rt.quality_policy()
    assert (policy.min_face_px, policy.max_pitch_deg, policy.max_yaw_deg) == (80, 20.0, 35.0)
    assert rt.analyse_options().quality == policy


def test_a_blurred_photo_is_less_sharp_and_called_blurry(rt: Runtime, testdata: Path) -> None:
    photo = Image.open(testdata / LFW / "Aaron_Peirsol/Aaron_Peirsol_0001.jpg").convert("RGB")
    sharp = analyse_image(rt.pool, np.asarray(photo), rt.analyse_options()).faces[0].quality
    blurred = photo.filter(ImageFilter.GaussianBlur(4))
    soft = analyse_image(rt.pool, np.asarray(blurred), rt.analyse_options()).faces[0].quality
    assert sharp.issues == [] and soft.sharpness < sharp.sharpness / 2
    assert "blurry" in soft.issues


def test_mirroring_a_turned_face_turns_it_the_other_way(rt: Runtime, testdata: Path) -> None:
    photo = np.asarray(
        Image.open(testdata / LFW / "Aaron_Sorkin/Aaron_Sorkin_0001.jpg").convert("RGB")
    )
    a = analyse_image(rt.pool, photo, rt.analyse_options()).faces[0].quality
    b = analyse_image(rt.pool, photo[:, ::-1].copy(), rt.analyse_options()).faces[0].quality
    # The detector is not exactly mirror-symmetric: its keypoints move a few pixels, the pose a
    # few degrees.
    assert a.yaw < -10 < 10 < b.yaw and abs(a.yaw + b.yaw) < 5
    assert a.face_size == pytest.approx(b.face_size, abs=8)


def test_a_darkened_photo_is_too_dark(rt: Runtime, testdata: Path) -> None:
    photo = np.asarray(
        Image.open(testdata / LFW / "Aaron_Peirsol/Aaron_Peirsol_0001.jpg").convert("RGB")
    )
    dark = (photo.astype(np.float32) * 0.3).astype(np.uint8)
    quality = analyse_image(rt.pool, dark, rt.analyse_options()).faces[0].quality
    assert quality.brightness < 0.2 and "too_dark" in quality.issues
