"""MobileFaceNet, the ArcFace alignment, and the fused space's vectors and raw score."""

from __future__ import annotations

import csv
import itertools
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from faceplane.engine.embed import (
    ARCFACE_TEMPLATE,
    MFN_DIM,
    arcface_chip,
    can_project,
    fuse,
    normalise,
    part_vectors,
    project,
    similarity_transform,
)
from faceplane.engine.faces import (
    AnalyseOptions,
    _five_points_from_dlib,
    analyse_image,
    five_points,
)
from faceplane.engine.models.registry import DLIB_SPACE, FUSED_SPACE, MFN_SPACE, get_space
from faceplane.engine.similarity import raw_score
from faceplane.runtime import Runtime


def decode(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def test_similarity_transform_recovers_a_known_one() -> None:
    angle, scale, shift = math.radians(17.0), 1.7, np.array([12.5, -40.0])
    rot = scale * np.array(
        [[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]]
    )
    src = ARCFACE_TEMPLATE * 2.3 + 5.0
    dst = src @ rot.T + shift
    m = similarity_transform(src, dst)
    assert np.allclose(m[:, :2], rot, atol=1e-9) and np.allclose(m[:, 2], shift, atol=1e-9)
    # A reflection is never returned: mirrored points give a proper rotation (det > 0).
    mirrored = dst * np.array([-1.0, 1.0])
    assert np.linalg.det(similarity_transform(src, mirrored)[:, :2]) > 0


def test_the_chip_puts_the_five_points_on_the_arcface_template() -> None:
    # Five bright dots at known points of a larger image, rotated and scaled: after alignment
    # each dot sits on its template point.
    img = np.zeros((400, 400, 3), np.uint8)
    angle, scale = math.radians(-12.0), 2.6
    rot = scale * np.array(
        [[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]]
    )
    pts = ARCFACE_TEMPLATE @ rot.T + np.array([90.0, 60.0])
    for i, (x, y) in enumerate(pts):
        cv2.circle(img, (round(x), round(y)), 4, (50 * (i + 1), 255, 0), -1)
    chip = arcface_chip(img, pts.astype(np.float32))
    assert chip.shape == (112, 112, 3)
    for i, (x, y) in enumerate(ARCFACE_TEMPLATE):
        px = chip[round(y), round(x)]
        assert px[1] > 200 and abs(int(px[0]) - 50 * (i + 1)) <= 12, (i, px)


def test_five_points_from_dlib_keep_the_eye_centres() -> None:
    # dlib's 5: subject's left eye corners (image right) first, then the right eye's, nose.
    shape5 = np.array([[160, 100], [130, 101], [70, 99], [100, 100], [115, 140]], np.float32)
    five = _five_points_from_dlib(shape5)
    assert np.allclose(five[0], [85, 99.5], atol=1e-3)  # image-left eye first (RetinaFace order)
    assert np.allclose(five[1], [145, 100.5], atol=1e-3)
    assert five[3][1] > five[2][1] > five[0][1]  # mouth below the nose below the eyes
    assert five[3][0] < five[4][0]


def test_the_fused_vector_is_a_weighted_concatenation() -> None:
    rng = np.random.default_rng(3)
    d = rng.standard_normal((4, 128)).astype(np.float32)
    m = rng.standard_normal((4, MFN_DIM)).astype(np.float32)
    fused = fuse(FUSED_SPACE, [d, m])
    spec = get_space(FUSED_SPACE)
    assert fused.shape == (4, spec.dim) == (4, 320)
    assert np.allclose(np.linalg.norm(fused, axis=1), 1.0, atol=1e-6)
    (wd, wm) = (p.weight for p in spec.parts)
    nd, nm = normalise(d), normalise(m)
    expected = wd * float(nd[0] @ nd[1]) + wm * float(nm[0] @ nm[1])
    assert raw_score(fused[0], fused[1])[0] == pytest.approx(expected, abs=1e-6)
    # The dlib part, renormalised, is the dlib space's vector.
    assert can_project(FUSED_SPACE, DLIB_SPACE) and not can_project(DLIB_SPACE, FUSED_SPACE)
    assert np.allclose(project(fused, FUSED_SPACE, DLIB_SPACE), nd, atol=1e-6)
    assert np.allclose(part_vectors(FUSED_SPACE, fused)[MFN_SPACE], nm, atol=1e-6)


def test_a_face_gets_the_same_vector_alone_or_paired(rt: Runtime, testdata: Path) -> None:
    # The graph's batch is 2: an odd batch is padded, and partners must not leak.
    mfn = rt.pool.embedder("mobilefacenet")
    root = testdata / "faces/face_recognition/examples"
    chips = []
    for name in ("obama.jpg", "biden.jpg", "obama2.jpg"):
        a = analyse_image(rt.pool, decode(root / name), AnalyseOptions(detector="retinaface"))
        kps = a.faces[0].detection.keypoints
        assert kps is not None
        chips.append(arcface_chip(decode(root / name), kps))
    batch = np.stack(chips)
    together = mfn.embed(batch)
    assert together.shape == (3, MFN_DIM)
    for i in range(3):
        alone = mfn.embed(batch[i : i + 1])[0]
        assert np.allclose(alone, together[i], atol=1e-5)
    assert np.allclose(mfn.embed(batch[[1, 0]])[1], together[0], atol=1e-5)


def test_mobilefacenet_puts_the_same_person_closer(rt: Runtime, testdata: Path) -> None:
    # deepface's 13 people (not LFW): every person's pairs score above most impostor pairs.
    root = testdata / "faces/deepface/images"
    rows = list(csv.DictReader((root / "identities.csv").open()))
    mfn = rt.pool.embedder("mobilefacenet")
    vectors, who = {}, {}
    for r in rows:
        rgb = decode(root / r["file"]) if (root / r["file"]).exists() else None
        if rgb is None:
            continue
        faces = analyse_image(rt.pool, rgb, AnalyseOptions(detector="retinaface")).faces
        if not faces or faces[0].detection.keypoints is None:
            continue
        chip = arcface_chip(rgb, faces[0].detection.keypoints)
        vectors[r["file"]] = normalise(mfn.embed(chip[None]))[0]
        who[r["file"]] = r["identity"]
    assert len(vectors) >= 50
    same, diff = [], []
    for a, b in itertools.combinations(sorted(vectors), 2):
        (same if who[a] == who[b] else diff).append(float(vectors[a] @ vectors[b]))
    s, d = np.asarray(same), np.asarray(diff)
    auc = float(np.mean(s[:, None] > d[None, :]))
    assert auc > 0.97, auc
    assert float(np.median(s)) > float(np.quantile(d, 0.99))


def test_every_detector_gets_five_points_near_retinafaces(rt: Runtime, testdata: Path) -> None:
    # BlazeFace and HOG give no mouth corners: RetinaFace on a crop of their box finds them.
    rgb = decode(testdata / "faces/face_recognition/examples/obama.jpg")
    ref = analyse_image(rt.pool, rgb, AnalyseOptions(detector="retinaface")).faces[0]
    assert ref.detection.keypoints is not None
    eyes = float(np.linalg.norm(ref.detection.keypoints[1] - ref.detection.keypoints[0]))
    for det in ("blazeface", "hog"):
        face = analyse_image(rt.pool, rgb, AnalyseOptions(detector=det)).faces[0]
        pts = five_points(rt.pool, rgb, face.detection, face.landmarks)
        err = np.linalg.norm(pts - ref.detection.keypoints, axis=1)
        # Within 6% of the eye distance on average, 15% at worst (mouth corners are vague).
        assert float(err.mean()) < 0.06 * eyes and float(err.max()) < 0.15 * eyes, (det, err)
        # dlib's own five points (the last resort) place the eyes as well.
        rough = _five_points_from_dlib(face.landmarks)
        assert float(np.linalg.norm(rough[:2] - ref.detection.keypoints[:2], axis=1).max()) < (
            0.15 * eyes
        )


def test_the_index_cosine_is_the_raw_score() -> None:
    from faceplane.store.vectors import CollectionIndex

    rng = np.random.default_rng(5)
    stored = fuse(FUSED_SPACE, [rng.standard_normal((6, 128)), rng.standard_normal((6, 192))])
    probe = fuse(FUSED_SPACE, [rng.standard_normal((1, 128)), rng.standard_normal((1, 192))])
    index = CollectionIndex(320)
    index.add(np.arange(6, dtype=np.int64), stored)
    keys, cos = index.search(probe, 6)
    for key, c in zip(keys[0], cos[0], strict=True):
        assert float(c) == pytest.approx(raw_score(probe[0], stored[key])[0], abs=1e-5)


def test_the_embedder_setting_chooses_the_set(tmp_path: Path, rt: Runtime) -> None:
    from faceplane.engine.models.pool import ModelPool

    models = rt.settings.models_dir
    if not ModelPool(models).present("mobilefacenet"):
        pytest.skip("MobileFaceNet is not installed")
    spaces = {
        choice: (ModelPool(models, embedder=choice).embedder_name(), space)
        for choice, space in (
            ("auto", FUSED_SPACE),
            ("fused", FUSED_SPACE),
            ("onnx", DLIB_SPACE),
            ("dlib", DLIB_SPACE),
            ("mobilefacenet", MFN_SPACE),
        )
    }
    assert spaces["auto"][0] == "dlib_resnet_onnx+mobilefacenet"
    assert spaces["dlib"][0] == "dlib_resnet" and spaces["onnx"][0] == "dlib_resnet_onnx"
    for choice, (_, space) in spaces.items():
        assert ModelPool(models, embedder=choice).embedding_space() == space, choice
    # Without MobileFaceNet (npm missing at install), `auto` is dlib's ResNet alone.
    bare = tmp_path / "models"
    bare.mkdir()
    for f in models.iterdir():
        if f.name != "MobileFaceNet.tflite":
            (bare / f.name).symlink_to(f)
    assert ModelPool(bare).embedding_space() == DLIB_SPACE
    assert ModelPool(bare).embedder_name_for(FUSED_SPACE) == "dlib_resnet_onnx+mobilefacenet"
