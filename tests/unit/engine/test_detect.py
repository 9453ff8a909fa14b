"""Face detection on the shared photos: exact counts, dlib's hand-drawn boxes, faces cut by the
frame edge, and no face on noise or textures.

The counts of photos without a count in their name were made by looking at each photo (a
downscaled copy, and zoomed crops of its edges and background, with an image viewer); how is
written next to each. A face counts when some of its eyes, nose and mouth are inside the frame,
whatever its size, blur or pose; a head seen from behind does not.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pytest

from faceplane.engine.detect import RETINA_KEYPOINTS, Detection, RetinaFaceDetector
from faceplane.engine.faces import analyse_image
from faceplane.engine.image import ImageLimits, decode_image
from faceplane.engine.models.pool import ModelPool
from faceplane.errors import Err, FaceplaneError
from faceplane.runtime import Runtime

SAMPLES = "faces/compreface/embedding-calculator/sample_images"
DLIB = "faces/dlib/examples/faces"
SELFIE = "faces/deepface/images/selfie-many-people.jpg"

COUNTED = [
    # The README's count; six people side by side, all frontal.
    ("faces/insightface/t1.jpg", 6),
    # Angelina Jolie and Brad Pitt, both whole.
    ("faces/deepface/images/couple.jpg", 2),
    # Seven: from left to right, a blonde woman cut by the left edge (one eye in the frame), a
    # woman below her cut by the left and bottom edges (one eye), Angelina Jolie, a bearded man,
    # Brad Pitt, a man with glasses at the top right, and the man taking the selfie, cut by the
    # right edge (one eye). Counted on the whole photo and on 2× crops of both side strips.
    (SELFIE, 7),
    # Obama and Biden, two photos side by side.
    ("faces/face_recognition/examples/two_people.jpg", 2),
    # Biden, Obama and a girl at the bottom right looking down; the woman at the right edge
    # shows only her hair (her face is outside the frame), so she is not counted.
    ("faces/face_recognition/examples/knn_examples/test/obama_and_biden.jpg", 3),
    # Rose Leslie and Kit Harington; the blurred person at the right edge behind them shows no
    # face at the photo's 501×700 px (a smudge of about 15 px), so is not counted.
    ("faces/face_recognition/examples/knn_examples/test/kit_with_rose.jpg", 2),
    # The four men on the sofa.
    ("faces/faceapijs/examples/images/bbt1.jpg", 4),
    # Leonard, Sheldon and a man with glasses at the left in the background; the grey-haired
    # woman, the bald man and the man at the right are seen from behind (zoomed 3×).
    ("faces/faceapijs/examples/images/bbt2.jpg", 3),
    # Five people in a row.
    ("faces/faceapijs/examples/images/bbt3.jpg", 5),
    # Three standing, three sitting.
    ("faces/faceapijs/examples/images/bbt4.jpg", 6),
    # Five leaning towards the camera.
    ("faces/faceapijs/examples/images/bbt5.jpg", 5),
]

# CompreFace's single-person photos: the letter is the person, not a count. Faces found by
# looking, beyond the annotated subject: 006_A has a doll on the shelf whose face is cut by the
# top edge. 003_A's wood-panelled wall is no face. 002_A (below) has diners in the background.
SINGLES = {
    "001_A.jpg": 1,
    "003_A.jpg": 1,
    "004_A.jpg": 1,
    "005_A.jpg": 1,
    "006_A.jpg": 2,
    "007_B.jpg": 1,
    "008_B.jpg": 1,
    "009_C.jpg": 1,
}


def load(path: Path) -> np.ndarray:
    return decode_image(path.read_bytes(), ImageLimits()).rgb


def faces_of(rt: Runtime, rgb: np.ndarray) -> list[Detection]:
    return [f.detection for f in analyse_image(rt.pool, rgb, rt.analyse_options()).faces]


def noses(testdata: Path) -> dict[str, list[tuple[int, int]]]:
    """CompreFace's annotations: one nose point per face, by file name."""
    text = (testdata / SAMPLES / "annotations.py").read_text()
    return {
        m.group(1): [(int(x), int(y)) for x, y in re.findall(r"\((\d+), (\d+)\)", m.group(2))]
        for m in re.finditer(r"Row\('(\d+_\w\.jpg)', \[(.*?)\]\)", text, re.S)
    }


def contains(d: Detection, point: tuple[int, int]) -> bool:
    return d.x <= point[0] <= d.x + d.w and d.y <= point[1] <= d.y + d.h


def each_nose_in_its_own_face(found: list[Detection], points: list[tuple[int, int]]) -> bool:
    """Every nose lies in a face, and no two noses share one."""
    owners = [[i for i, d in enumerate(found) if contains(d, p)] for p in points]
    if any(not o for o in owners):
        return False
    used: set[int] = set()
    for o in sorted(owners, key=len):
        free = [i for i in o if i not in used]
        if not free:
            return False
        used.add(free[0])
    return True


def test_the_default_detector_is_retinaface_when_installed(rt: Runtime) -> None:
    assert rt.analyse_options().detector == "auto"
    assert rt.pool.detector_name("auto") == "retinaface"
    assert rt.pool.detector().name == "retinaface_mnet025"
    assert rt.pool.detector("blazeface").name == "blazeface_full_range"
    assert rt.pool.detector("hog").name == "dlib_hog"
    with pytest.raises(ValueError, match="unknown detector"):
        rt.pool.detector("cnn")


def test_auto_falls_back_to_blazeface_but_never_to_hog(tmp_path: Path) -> None:
    pool = ModelPool(tmp_path)  # an empty models folder
    assert pool.detector_name("auto") == "retinaface"
    with pytest.raises(FaceplaneError) as err:
        pool.detector()
    assert err.value.err == Err.MODEL_UNAVAILABLE
    assert err.value.details["model"] == "retinaface_mnet025"
    pool._present["blazeface_full_range"] = True
    assert pool.detector_name("auto") == "blazeface"
    assert pool.detector_model("auto") == "blazeface_full_range"
    pool._present["retinaface_mnet025"] = True
    assert pool.detector_name("auto") == "retinaface"


@pytest.mark.parametrize(("path", "count"), COUNTED, ids=[Path(p).name for p, _ in COUNTED])
def test_counted_group_photos(rt: Runtime, testdata: Path, path: str, count: int) -> None:
    found = faces_of(rt, load(testdata / path))
    assert len(found) == count, [round(d.score, 3) for d in found]


def test_compreface_group_photos_count_as_named_and_hold_each_nose(
    rt: Runtime, testdata: Path
) -> None:
    annotated = noses(testdata)
    numbered = [n for n in annotated if n[4].isdigit()]
    assert len(numbered) == 9
    for name in numbered:
        found = faces_of(rt, load(testdata / SAMPLES / name))
        assert len(found) == int(name[4]), name
        assert each_nose_in_its_own_face(found, annotated[name]), name


@pytest.mark.parametrize("name", sorted(SINGLES))
def test_compreface_single_person_photos(rt: Runtime, testdata: Path, name: str) -> None:
    found = faces_of(rt, load(testdata / SAMPLES / name))
    assert len(found) == SINGLES[name], [(round(d.x), round(d.y), round(d.score, 3)) for d in found]
    assert each_nose_in_its_own_face(found, noses(testdata)[name])


def test_the_background_diners_of_002_A_and_no_other_face(rt: Runtime, testdata: Path) -> None:
    # Behind the plants on the right of the 3880×5184 photo sit three diners, zoomed 2× to
    # count them: a bald man in profile (face about 70×110 px), a dark-haired woman and a man
    # in red at the right edge, both mostly hidden by leaves. Any face found besides the
    # subject must be one of them, inside x 3100–3880, y 1900–2700.
    found = faces_of(rt, load(testdata / SAMPLES / "002_A.jpg"))
    subject = [d for d in found if contains(d, noses(testdata)["002_A.jpg"][0])]
    others = [d for d in found if d not in subject]
    assert len(subject) == 1 and 1 <= len(others) <= 3
    for d in others:
        assert d.x >= 3100 and d.x + d.w <= 3880 and d.y >= 1900 and d.y + d.h <= 2700, d
    # The bald man, the clearest of the three, is among them.
    assert any(3350 < d.x + d.w / 2 < 3600 and 2150 < d.y + d.h / 2 < 2400 for d in others)


def dlib_boxes(folder: Path) -> dict[str, list[tuple[float, float, float, float]]]:
    """Image → hand-drawn (x, y, w, h) boxes of training.xml and testing.xml (ignored ones
    left out); dogs.jpg has none."""
    truth: dict[str, list[tuple[float, float, float, float]]] = {"dogs.jpg": []}
    for name in ("training.xml", "testing.xml"):
        for img in ET.parse(folder / name).getroot().iter("image"):
            boxes = truth.setdefault(img.attrib["file"], [])
            for b in img.iter("box"):
                if b.attrib.get("ignore") != "1":
                    boxes.append(
                        (
                            float(b.attrib["left"]),
                            float(b.attrib["top"]),
                            float(b.attrib["width"]),
                            float(b.attrib["height"]),
                        )
                    )
    return truth


def box_iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return ix * iy / (a[2] * a[3] + b[2] * b[3] - ix * iy)


def test_dlibs_43_hand_drawn_boxes_are_all_found_with_no_false_positive(
    rt: Runtime, testdata: Path
) -> None:
    truth = dlib_boxes(testdata / DLIB)
    assert sum(len(v) for v in truth.values()) == 43
    matched = extra = 0
    for name, boxes in truth.items():
        found = [(d.x, d.y, d.w, d.h) for d in faces_of(rt, load(testdata / DLIB / name))]
        used: set[int] = set()
        for t in boxes:  # greedy one-to-one matching at IoU ≥ 0.4, as bench/detect.py
            best = max(
                (i for i in range(len(found)) if i not in used),
                key=lambda i: box_iou(t, found[i]),
                default=None,
            )
            if best is not None and box_iou(t, found[best]) >= 0.4:
                used.add(best)
        matched += len(used)
        extra += len(found) - len(used)
    assert (matched, extra) == (43, 0)


def test_faces_cut_by_the_frame_edge_are_found(rt: Runtime, testdata: Path) -> None:
    rgb = load(testdata / SELFIE)
    h, w = rgb.shape[:2]
    found = faces_of(rt, rgb)
    # The two women cut by the left edge and the man cut by the right edge (see COUNTED).
    left = [d for d in found if d.x < 1]
    right = [d for d in found if d.x + d.w > w - 1 and d.y > h / 3]
    assert len(left) == 2 and len(right) == 1
    assert all(d.keypoint_names == RETINA_KEYPOINTS for d in found)
    # BlazeFace, the former default, misses them.
    assert len(rt.pool.detector("blazeface").detect(rgb, 0.5)) < 7


@pytest.mark.parametrize("turn", [0, 1, 2, 3])
def test_half_a_face_at_any_edge_is_found(rt: Runtime, astronaut: bytes, turn: int) -> None:
    rgb = decode_image(astronaut, ImageLimits()).rgb
    face = faces_of(rt, rgb)[0]
    # Keep the right half of the face (and what lies right of it), then turn the picture so
    # that the cut lies along each edge in turn.
    cut = np.ascontiguousarray(np.rot90(rgb[:, int(face.x + face.w / 2) :], turn))
    found = faces_of(rt, cut)
    assert len(found) == 1, turn
    d = found[0]
    h, w = cut.shape[:2]
    on_edge = {0: d.x < 1, 1: d.y + d.h > h - 1, 2: d.x + d.w > w - 1, 3: d.y < 1}
    assert on_edge[turn], (turn, d)


def textures(seed: int) -> dict[str, np.ndarray]:
    """Uniform and Gaussian noise, smooth noise at two grain sizes, and a wood-like grain, at
    four sizes from 320×240 to 12 megapixels."""
    rng = np.random.default_rng(seed)
    out = {}
    for w, h in ((320, 240), (640, 480), (1920, 1080), (4000, 3000)):
        out[f"uniform {w}x{h}"] = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        gauss = rng.normal(128, 40, (h, w, 3))
        out[f"gaussian {w}x{h}"] = np.clip(gauss, 0, 255).astype(np.uint8)
        for cell in (8, 32):
            low = rng.normal(0, 1, (h // cell + 2, w // cell + 2, 3)).astype(np.float32)
            big = cv2.resize(low, (w + 2 * cell, h + 2 * cell), interpolation=cv2.INTER_CUBIC)
            smooth = big[cell : cell + h, cell : cell + w]
            out[f"smooth{cell} {w}x{h}"] = np.clip(128 + 50 * smooth / smooth.std(), 0, 255).astype(
                np.uint8
            )
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        rings = np.hypot(xx - w * 0.3, (yy - h * 0.5) * 3)
        grain = 0.5 + 0.5 * np.sin(rings / 6 + 2 * np.sin(xx / 50) + rng.normal(0, 0.3, (h, w)))
        wood = np.stack([120 + 80 * grain, 80 + 50 * grain, 40 + 30 * grain], -1)
        out[f"wood {w}x{h}"] = wood.clip(0, 255).astype(np.uint8)
    return out


def test_noise_and_textures_have_no_face(rt: Runtime) -> None:
    found = {name: len(faces_of(rt, rgb)) for name, rgb in textures(seed=12).items()}
    assert len(found) == 20
    assert {name: n for name, n in found.items() if n} == {}


def test_scores_are_calibrated_and_boxes_lie_in_the_frame(rt: Runtime, testdata: Path) -> None:
    detector = rt.pool.detector("retinaface")
    assert isinstance(detector, RetinaFaceDetector)
    assert detector.calibrated(detector.op_score) == pytest.approx(0.5)
    assert detector.calibrated(1.0) == pytest.approx(1.0) and detector.calibrated(0.0) == 0.0
    grid = [detector.calibrated(s) for s in np.linspace(0, 1, 101)]
    assert grid == sorted(grid)
    rgb = load(testdata / SELFIE)
    h, w = rgb.shape[:2]
    for d in detector.detect(rgb, 0.5):
        assert 0.5 <= d.score <= 1.0
        assert d.x >= 0 and d.y >= 0 and d.x + d.w <= w and d.y + d.h <= h
        assert d.keypoints is not None and d.keypoints.shape == (5, 2)
    # A threshold above every score leaves nothing; a low one keeps at least as many.
    assert detector.detect(rgb, 1.01) == []
    assert len(detector.detect(rgb, 0.3)) >= len(detector.detect(rgb, 0.5))


def test_pose_from_retinafaces_five_keypoints(rt: Runtime, testdata: Path) -> None:
    from faceplane.engine.quality import head_pose

    photo = load(testdata / "lfw_view1/images/Aaron_Sorkin/Aaron_Sorkin_0001.jpg")
    h, w = photo.shape[:2]
    detector = rt.pool.detector("retinaface")
    turned = max(detector.detect(photo, 0.5), key=lambda d: d.area)
    mirrored = max(detector.detect(photo[:, ::-1].copy(), 0.5), key=lambda d: d.area)
    assert turned.keypoints is not None and mirrored.keypoints is not None
    yaw, pitch, roll = head_pose(turned.keypoints, w, h, RETINA_KEYPOINTS)
    yaw_m, _, roll_m = head_pose(mirrored.keypoints, w, h, RETINA_KEYPOINTS)
    # He looks towards the image's left; in the mirror, to its right, by about as much.
    assert yaw < -10 < 10 < yaw_m and abs(yaw + yaw_m) < 6 and abs(roll + roll_m) < 4
    # The five points are fitted to RetinaFace's head, not to dlib's five (other points).
    assert head_pose(turned.keypoints, w, h, None) != (yaw, pitch, roll)
    with pytest.raises(ValueError, match="5 points for a head model of 6"):
        head_pose(
            turned.keypoints,
            w,
            h,
            ("right_eye", "left_eye", "nose_tip", "mouth", "right_ear", "left_ear"),
        )
