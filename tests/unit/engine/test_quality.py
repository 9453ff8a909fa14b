"""Face quality: the components on real photos, the unified score, and the one policy's reasons."""

from __future__ import annotations

import io
import re
from dataclasses import replace
from pathlib import Path
from typing import get_args

import numpy as np
import pytest
from PIL import Image, ImageFilter

from faceplane.engine.faces import analyse_image
from faceplane.engine.quality import (
    EXPLANATIONS,
    LEVELS,
    OCCLUSION_REGIONS,
    Quality,
    QualityPolicy,
    blockiness,
    crete_sharpness,
    measure_quality,
)
from faceplane.engine.quality_score import level_thresholds, load_model, score_inputs
from faceplane.runtime import Runtime
from faceplane.settings import Settings

LFW = "lfw_view1/images"
SHARP = "Aaron_Peirsol/Aaron_Peirsol_0001.jpg"
SUNGLASSES = (
    "Jessica_Lange/Jessica_Lange_0001.jpg",
    "Patricia_Clarkson/Patricia_Clarkson_0004.jpg",
)
TURNED = "Tom_Daschle/Tom_Daschle_0021.jpg"  # yaw about 43°
GOOD = Quality(
    face_size=110, inter_eye_px=45.0, size_ratio=0.45, sharpness=0.45, brightness=0.5,
    under_exposure=0.0, over_exposure=0.0, uniformity=0.95, dynamic_range=0.87,
    compression=0.1, yaw=5.0, pitch=-5.0, roll=0.0, incomplete=0.0,
    eye_openness={"left": 0.28, "right": 0.27}, mouth_openness=0.05,
    occlusion=dict.fromkeys(OCCLUSION_REGIONS, 0.05), pose_source="mesh", score=95.0,
)  # fmt: skip


@pytest.fixture(scope="module")
def rt(tmp_path_factory: pytest.TempPathFactory) -> Runtime:
    return Runtime.open(Settings(data_dir=tmp_path_factory.mktemp("quality")))


def rgb(testdata: Path, name: str) -> np.ndarray:
    return np.asarray(Image.open(testdata / LFW / name).convert("RGB"))


def measured(rt: Runtime, image: np.ndarray) -> Quality:
    faces = analyse_image(rt.pool, image, rt.analyse_options()).faces
    assert faces, "no face found"
    return faces[0].quality


# ---- the policy, on given components ---------------------------------------------------------


def test_a_good_face_has_no_reasons_at_any_level() -> None:
    for level in ("NONE", "AUTO", "LOW", "MEDIUM", "HIGH"):
        assert QualityPolicy(level=level).reasons(GOOD) == []


@pytest.mark.parametrize(
    ("change", "reason", "measure"),
    [
        ({"inter_eye_px": 20.0}, "too_small", "inter_eye_px"),
        ({"incomplete": 0.3}, "incomplete", "incomplete"),
        ({"eye_openness": {"left": 0.05, "right": 0.27}}, "eyes_closed", "eye_openness.left"),
        (
            {"occlusion": {**dict.fromkeys(OCCLUSION_REGIONS, 0.0), "right_eye": 0.9}},
            "right_eye_occluded",
            "occlusion.right_eye",
        ),
    ],
)
def test_a_hard_reason_refuses_even_a_high_score(
    change: dict[str, object], reason: str, measure: str
) -> None:
    quality = replace(GOOD, **change)  # type: ignore[arg-type]
    [found] = QualityPolicy().reasons(quality)
    assert (found["reason"], found["measure"]) == (reason, measure)
    assert QualityPolicy(level="NONE").reasons(quality) == []


def test_a_component_explains_a_low_score_and_refuses_nothing_alone() -> None:
    soft = replace(GOOD, sharpness=0.2)
    assert QualityPolicy().reasons(soft) == []  # a high score: nothing to explain
    bar = QualityPolicy().min_score()
    assert bar is not None
    low = replace(soft, score=bar - 1)
    assert QualityPolicy().issues(low) == ["blurry", "low_score"]
    last = QualityPolicy().reasons(low)[-1]
    assert last == {"reason": "low_score", "measure": "score", "value": bar - 1, "limit": bar}
    # A low score nothing explains is refused for the score alone.
    assert QualityPolicy().issues(replace(GOOD, score=bar - 1)) == ["low_score"]


@pytest.mark.parametrize(("reason", "measure", "bound", "limit"), EXPLANATIONS)
def test_each_explanation_names_its_component(
    reason: str, measure: str, bound: str, limit: float
) -> None:
    past = limit - 0.05 if bound == "min" else limit + (5.0 if bound == "abs" else 0.05)
    if "." in measure:
        group, key = measure.split(".")
        change = {group: {**getattr(GOOD, group), key: past}}
    else:
        change = {measure: past}
    low = replace(GOOD, score=1.0, **change)  # type: ignore[arg-type]
    assert QualityPolicy().issues(low) == [reason, "low_score"]


def test_the_levels_rise_and_a_request_can_change_them() -> None:
    levels = level_thresholds()
    assert levels is not None, "the score model ships with the package"
    assert 0 < levels["LOW"] < levels["MEDIUM"] < levels["HIGH"] < 100
    face = replace(GOOD, score=(levels["MEDIUM"] + levels["HIGH"]) / 2)
    policy = QualityPolicy(level="LOW")
    assert policy.issues(face) == [] and policy.with_level("MEDIUM").issues(face) == []
    assert policy.with_level("HIGH").issues(face) == ["low_score"]
    assert policy.with_level(None) is policy
    with pytest.raises(ValueError):
        QualityPolicy(level="STRICT")


def test_the_runtime_builds_the_policy_from_its_settings(tmp_path: Path) -> None:
    rt = Runtime.open(
        Settings(
            data_dir=tmp_path,
            quality_filter="HIGH",
            quality_min_inter_eye_px=40,
            quality_min_score=50,
        )
    )
    policy = rt.quality_policy()
    assert (policy.level, policy.min_inter_eye_px, policy.min_score()) == ("HIGH", 40, 50)
    assert rt.analyse_options().quality == policy


def test_the_score_model_reads_every_component() -> None:
    model = load_model()
    assert model is not None
    assert {i["name"] for i in model.inputs} == set(score_inputs(GOOD))
    good = float(model.predict([score_inputs(GOOD)])[0])
    occluded = {**dict.fromkeys(OCCLUSION_REGIONS, 0.05), "left_eye": 0.9}
    worse = [
        {"sharpness": 0.15},
        {"yaw": 60.0},
        {"compression": 0.6},
        {"incomplete": 0.5},
        {"occlusion": occluded},
    ]
    for change in worse:
        assert float(model.predict([score_inputs(replace(GOOD, **change))])[0]) < good, change
    # Every weight is ≤ 0: no component made worse raises the score.
    assert all(c <= 0 for c in model.coef)
    for change in ({"inter_eye_px": 12.0}, {"under_exposure": 0.9}, {"uniformity": 0.3}):
        assert float(model.predict([score_inputs(replace(GOOD, **change))])[0]) <= good


# ---- the measures, on synthetic images -------------------------------------------------------


def test_sharpness_falls_with_blur_and_blockiness_rises_with_jpeg() -> None:
    rng = np.random.default_rng(0)
    img = (rng.random((160, 160)) * 255).astype(np.uint8)
    img = np.asarray(Image.fromarray(img).filter(ImageFilter.GaussianBlur(1)))
    mask = np.full(img.shape, 255, np.uint8)
    blurred = np.asarray(Image.fromarray(img).filter(ImageFilter.GaussianBlur(4)))
    assert crete_sharpness(blurred, mask) < 0.6 * crete_sharpness(img, mask)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=5)
    blocky = np.asarray(Image.open(buf).convert("L"))
    assert blockiness(blocky, (0, 0, 160, 160)) > 0.4 > blockiness(img, (0, 0, 160, 160))


# ---- the measures and the reasons, on real photos ---------------------------------------------


def test_a_sharp_frontal_face_passes_with_every_component(rt: Runtime, testdata: Path) -> None:
    q = measured(rt, rgb(testdata, SHARP))
    assert q.issues == [] and q.score is not None and q.score > 80
    assert q.pose_source == "mesh" and q.occlusion is not None and q.eye_openness is not None
    d = q.as_dict()
    for key in ("sharpness", "brightness", "under_exposure", "over_exposure", "uniformity",
                "dynamic_range", "compression", "size_ratio", "incomplete"):  # fmt: skip
        assert 0 <= d[key] <= 1, key  # type: ignore[operator]
    assert 0 <= d["score"] <= 100  # type: ignore[operator]


def test_a_blurred_copy_is_refused_as_blurry(rt: Runtime, testdata: Path) -> None:
    photo = Image.open(testdata / LFW / SHARP).convert("RGB")
    sharp = measured(rt, np.asarray(photo))
    soft = measured(rt, np.asarray(photo.filter(ImageFilter.GaussianBlur(4))))
    assert soft.sharpness < sharp.sharpness * 0.7 and soft.score < sharp.score  # type: ignore[operator]
    assert soft.issues[0] == "blurry" and soft.issues[-1] == "low_score"


def test_a_darkened_copy_is_refused_as_too_dark(rt: Runtime, testdata: Path) -> None:
    dark = (rgb(testdata, SHARP).astype(np.float32) * 0.12).astype(np.uint8)
    q = measured(rt, dark)
    assert q.under_exposure > 0.5 and q.issues[0] == "too_dark"


@pytest.mark.parametrize("name", SUNGLASSES)
def test_real_sunglasses_cover_both_eyes(rt: Runtime, testdata: Path, name: str) -> None:
    q = measured(rt, rgb(testdata, name))
    assert q.occlusion is not None
    assert min(q.occlusion["left_eye"], q.occlusion["right_eye"]) > 0.7
    assert max(q.occlusion["nose"], q.occlusion["chin"]) < 0.3
    assert q.issues[:2] == ["left_eye_occluded", "right_eye_occluded"]


def test_a_face_cut_by_the_frame_is_incomplete(rt: Runtime, testdata: Path) -> None:
    photo = rgb(testdata, SHARP)
    whole = measured(rt, photo)
    cut = measured(rt, photo[:, : photo.shape[1] // 2 + 10].copy())
    assert whole.incomplete == 0 and cut.incomplete > 0.2
    assert cut.issues[0] == "incomplete"


def test_a_turned_face_is_refused_as_not_frontal(rt: Runtime, testdata: Path) -> None:
    q = measured(rt, rgb(testdata, TURNED))
    assert abs(q.yaw) > 40 and q.issues[0] == "not_frontal"


def test_a_small_face_is_too_small(rt: Runtime, testdata: Path) -> None:
    photo = Image.open(testdata / LFW / SHARP).convert("RGB")
    q = measured(rt, np.asarray(photo.resize((90, 90), Image.Resampling.LANCZOS)))
    assert q.inter_eye_px < 24 and q.issues[0] == "too_small"


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


def test_the_documented_levels_are_the_shipped_ones() -> None:
    levels = level_thresholds()
    assert levels is not None
    doc = (Path(__file__).resolve().parents[3] / "docs" / "quality.md").read_text()
    rows = dict(re.findall(r"^\| `([A-Z]+)`[^|]*\| ([0-9.]+) \|", doc, re.M))
    assert rows == {name: f"{bar:.1f}" for name, bar in levels.items()}


def test_the_settings_offer_exactly_the_policys_levels() -> None:
    annotation = Settings.model_fields["quality_filter"].annotation
    assert get_args(annotation) == LEVELS


def test_a_box_outside_the_image_is_measured_without_failing() -> None:
    rgb = np.full((80, 80, 3), 120, np.uint8)
    points = np.array([[200.0, 210.0], [240.0, 210.0], [220, 230], [205, 250], [235, 250]])
    names = ("right_eye", "left_eye", "nose_tip", "mouth_right", "mouth_left")
    q = measure_quality(rgb, (190.0, 190.0, 60.0, 70.0), points, QualityPolicy(), names)
    assert q.compression == 0.0 and q.incomplete == 1.0 and "incomplete" in q.issues
