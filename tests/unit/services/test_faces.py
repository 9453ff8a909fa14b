"""services.faces, called directly: detect and compare on real photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from faceplane.engine.embed import project
from faceplane.engine.models.registry import DLIB_SPACE, FUSED_SPACE, get_space
from faceplane.engine.similarity import raw_score
from faceplane.errors import Err, FaceplaneError
from faceplane.runtime import Runtime
from faceplane.services.faces import CompareSide, DetectRequest, compare_faces, detect_faces
from faceplane.services.images import ImageSource
from faceplane.settings import Settings

JOHNS = "faces/dlib/examples/johns"
GROUP = "faces/insightface/t1.jpg"
NO_FACE = "faces/dlib/examples/faces/dogs.jpg"


@pytest.fixture(scope="module")
def rt(tmp_path_factory: pytest.TempPathFactory) -> Runtime:
    return Runtime.open(Settings(data_dir=tmp_path_factory.mktemp("faces")))


def image(path: Path, field: str = "image") -> ImageSource:
    return ImageSource(field, data=path.read_bytes())


def john(testdata: Path, person: int, photo: int) -> Path:
    folder = sorted(p for p in (testdata / JOHNS).iterdir() if p.is_dir())[person]
    return sorted(folder.glob("*.jpg"))[photo]


def test_the_group_photo_has_six_faces_largest_first(rt: Runtime, testdata: Path) -> None:
    out = detect_faces(rt, image(testdata / GROUP), DetectRequest())
    assert len(out["faces"]) == 6 and out["image"] == {"width": 1280, "height": 886}
    areas = [f["box"]["width"] * f["box"]["height"] for f in out["faces"]]
    assert areas == sorted(areas, reverse=True)
    assert set(out["models"]) == {"detector", "landmarks", "mesh"}  # the mesh measures quality


def test_detect_options_filter_and_add(rt: Runtime, testdata: Path) -> None:
    few = detect_faces(rt, image(testdata / GROUP), DetectRequest(max_faces=2))
    assert len(few["faces"]) == 2
    big = detect_faces(rt, image(testdata / GROUP), DetectRequest(min_face_size=110))
    assert 0 < len(big["faces"]) < 6 and all(f["box"]["width"] >= 110 for f in big["faces"])
    research = Runtime.open(rt.settings.model_copy(update={"model_set": "research"}))
    rich = detect_faces(
        research, image(john(testdata, 0, 0)), DetectRequest(landmarks=68, return_embedding=True)
    )
    face = rich["faces"][0]
    assert rich["models"]["space"] == rt.pool.embedding_space()
    assert len(face["landmarks"]) == 68
    assert len(face["embedding"]) == get_space(rich["models"]["space"]).dim
    assert rich["models"]["landmarks"] == "dlib_68pt" and "embedder" in rich["models"]


def test_detect_issues_come_from_the_runtimes_policy(testdata: Path, tmp_path: Path) -> None:
    strict = Runtime.open(Settings(data_dir=tmp_path, quality_min_inter_eye_px=200))
    face = detect_faces(strict, image(john(testdata, 0, 0)), DetectRequest())["faces"][0]
    assert face["quality"]["inter_eye_px"] < 200 and face["quality"]["issues"] == ["too_small"]
    # A request may ask for another level: NONE reports nothing.
    lax = detect_faces(strict, image(john(testdata, 0, 0)), DetectRequest(quality_threshold="NONE"))
    assert lax["faces"][0]["quality"]["issues"] == []


def test_detect_options_are_read_from_any_object_with_the_fields() -> None:
    class Params:
        max_faces, min_face_size, det_threshold = 3, 30, 0.7
        landmarks, return_embedding, detector = 68, True, "hog"

    req = DetectRequest.from_params(Params())
    assert req == DetectRequest(3, 30, 0.7, 68, True, "hog")


def test_the_same_john_matches_and_two_johns_do_not(rt: Runtime, testdata: Path) -> None:
    req = DetectRequest()
    same = compare_faces(
        rt,
        CompareSide(image(john(testdata, 0, 0))),
        CompareSide(image(john(testdata, 0, 5))),
        req,
    )
    other = compare_faces(
        rt,
        CompareSide(image(john(testdata, 0, 0))),
        CompareSide(image(john(testdata, 1, 0))),
        req,
    )
    assert same["match"] and not other["match"]
    assert same["similarity"] > same["threshold"] > other["similarity"]
    assert same["face1"]["index"] == 0 and "embedding" not in same["face1"]


def test_an_embedding_compares_like_its_photo(rt: Runtime, testdata: Path) -> None:
    req = DetectRequest(return_embedding=True)
    vec = detect_faces(rt, image(john(testdata, 2, 0)), req)["faces"][0]["embedding"]
    by_photo = compare_faces(
        rt, CompareSide(image(john(testdata, 2, 0))), CompareSide(image(john(testdata, 2, 3))), req
    )
    by_vector = compare_faces(
        rt, CompareSide(embedding=vec), CompareSide(image(john(testdata, 2, 3))), req
    )
    assert by_vector["similarity"] == pytest.approx(by_photo["similarity"], abs=1e-4)
    assert by_vector["face1"] is None


def test_compare_takes_a_vector_of_either_space(rt: Runtime, testdata: Path) -> None:
    # A 320-d fused vector and a 128-d dlib one compare by their dlib parts; a 192-d
    # MobileFaceNet vector has no part in common with a 128-d one.
    if rt.pool.embedding_space() != FUSED_SPACE:
        pytest.skip("MobileFaceNet is not installed: the server is not fused")
    req = DetectRequest(return_embedding=True)
    fused = [
        detect_faces(rt, image(john(testdata, 1, i)), req)["faces"][0]["embedding"] for i in (0, 1)
    ]
    dlib_b = project(np.asarray([fused[1]], np.float32), FUSED_SPACE, DLIB_SPACE)[0]
    both = compare_faces(rt, CompareSide(embedding=fused[0]), CompareSide(embedding=fused[1]), req)
    assert both["space"] == FUSED_SPACE and both["match"]
    mixed = compare_faces(
        rt, CompareSide(embedding=fused[0]), CompareSide(embedding=dlib_b.tolist()), req
    )
    assert mixed["space"] == DLIB_SPACE and mixed["model"] in ("dlib_resnet_onnx", "dlib_resnet")
    dlib_a = project(np.asarray([fused[0]], np.float32), FUSED_SPACE, DLIB_SPACE)[0]
    expected, _ = raw_score(dlib_a, dlib_b)
    assert mixed["distance"] == pytest.approx(np.sqrt(2 - 2 * expected), abs=1e-5)
    with pytest.raises(FaceplaneError) as exc:
        compare_faces(
            rt, CompareSide(embedding=[0.1] * 192), CompareSide(embedding=dlib_b.tolist()), req
        )
    assert exc.value.err is Err.EMBEDDING_MODEL_MISMATCH


def test_compare_names_the_side_at_fault(rt: Runtime, testdata: Path) -> None:
    req = DetectRequest()
    good = CompareSide(image(john(testdata, 0, 0), "image1"))
    cases = [
        (CompareSide(image(testdata / NO_FACE, "image2")), Err.FACE_NOT_FOUND),
        (
            CompareSide(image(john(testdata, 0, 1), "image2"), face_index=2),
            Err.FACE_INDEX_OUT_OF_RANGE,
        ),
        (CompareSide(embedding=[0.0] * 128), Err.EMBEDDING_INVALID),
    ]
    for side, err in cases:
        with pytest.raises(FaceplaneError) as exc:
            compare_faces(rt, good, side, req)
        assert exc.value.err is err and exc.value.details["field"] == "image2"
