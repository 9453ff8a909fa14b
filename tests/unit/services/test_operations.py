"""services/operations.py: the operation registry and detect / compare / crop on real photos."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from faceplane.engine.models.registry import get_space
from faceplane.errors import Err, FaceplaneError
from faceplane.runtime import Runtime
from faceplane.services.images import ImageSource
from faceplane.services.operations import OPERATIONS, get_operation, run_operation
from faceplane.settings import Settings

GROUP = "faces/insightface/t1.jpg"  # 1280×886, 6 faces
NO_FACE = "faces/compreface/embedding-calculator/sample_images/017_0.jpg"
OBAMA = "faces/face_recognition/examples/obama.jpg"
OBAMA2 = "faces/face_recognition/examples/obama2.jpg"
BIDEN = "faces/face_recognition/examples/biden.jpg"
COMPANY = "company-1"


@pytest.fixture(scope="module")
def rt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    """One runtime (and loaded models) for the module, on a fresh data folder."""
    runtime = Runtime.open(Settings(data_dir=tmp_path_factory.mktemp("ops")))
    yield runtime
    runtime.close()


def photo(testdata: Path, name: str, field: str = "image") -> ImageSource:
    """A real photo as an uploaded image."""
    return ImageSource(field, data=(testdata / name).read_bytes())


def size_of(jpeg: bytes) -> tuple[int, int]:
    """(width, height) of JPEG bytes, checking they are a JPEG."""
    img = Image.open(io.BytesIO(jpeg))
    assert img.format == "JPEG"
    return img.size


# ---- the registry --------------------------------------------------------------------------


def test_every_operation_is_registered_under_its_name() -> None:
    assert set(OPERATIONS) == {"detect", "compare", "crop", "enroll", "search", "blacklist_check"}
    assert all(get_operation(name).name == name for name in OPERATIONS)
    assert get_operation("compare").image_fields == ("image1", "image2")


def test_an_unknown_operation_is_an_invalid_argument_listing_the_known_ones() -> None:
    with pytest.raises(FaceplaneError) as info:
        get_operation("beautify")
    err = info.value
    assert err.err is Err.INVALID_ARGUMENT
    assert err.details == {"operation": "beautify"}
    assert "blacklist_check, compare, crop, detect, enroll, search" in err.message


def test_an_unknown_operation_is_refused_by_run_operation_before_any_work(rt: Runtime) -> None:
    with pytest.raises(FaceplaneError) as info:
        run_operation(rt, "nope", {}, {}, COMPANY)
    assert info.value.err is Err.INVALID_ARGUMENT


def test_bad_options_are_refused_before_the_image_is_looked_at(rt: Runtime) -> None:
    # No image at all, and a bad option: the option is what the caller hears about.
    with pytest.raises(FaceplaneError) as info:
        run_operation(rt, "detect", {}, {"max_faces": 0}, COMPANY)
    assert info.value.err is Err.INVALID_ARGUMENT
    assert info.value.details["errors"] == [
        {"field": "max_faces", "problem": "Input should be greater than or equal to 1"}
    ]


# ---- detect --------------------------------------------------------------------------------


def test_detect_finds_the_six_faces_of_the_group_photo_largest_first(
    rt: Runtime, testdata: Path
) -> None:
    result = run_operation(rt, "detect", {"image": photo(testdata, GROUP)}, {}, COMPANY)
    body = result.body
    assert body["image"] == {"width": 1280, "height": 886}
    assert len(body["faces"]) == 6
    areas = [f["box"]["width"] * f["box"]["height"] for f in body["faces"]]
    assert areas == sorted(areas, reverse=True)
    assert all(len(f["landmarks"]) == 5 and "embedding" not in f for f in body["faces"])
    assert result.images == {}
    assert body["models"]["detector"]


def test_detect_honours_max_faces_and_return_embedding(rt: Runtime, testdata: Path) -> None:
    result = run_operation(
        rt,
        "detect",
        {"image": photo(testdata, GROUP)},
        {"max_faces": 2, "return_embedding": True},
        COMPANY,
    )
    faces = result.body["faces"]
    assert len(faces) == 2
    dim = get_space(result.body["models"]["space"]).dim
    assert all(len(f["embedding"]) == dim for f in faces)


def test_detect_finds_no_face_in_a_photo_without_one(rt: Runtime, testdata: Path) -> None:
    result = run_operation(rt, "detect", {"image": photo(testdata, NO_FACE)}, {}, COMPANY)
    assert result.body["faces"] == []


def test_detect_without_an_image_is_a_missing_argument(rt: Runtime) -> None:
    with pytest.raises(FaceplaneError) as info:
        run_operation(rt, "detect", {}, {}, COMPANY)
    assert info.value.err is Err.MISSING_ARGUMENT
    assert info.value.details["field"] == "image"


# ---- compare -------------------------------------------------------------------------------


def test_compare_matches_the_same_person_and_not_another(rt: Runtime, testdata: Path) -> None:
    same = run_operation(
        rt,
        "compare",
        {"image1": photo(testdata, OBAMA, "image1"), "image2": photo(testdata, OBAMA2, "image2")},
        {},
        COMPANY,
    ).body
    other = run_operation(
        rt,
        "compare",
        {"image1": photo(testdata, OBAMA, "image1"), "image2": photo(testdata, BIDEN, "image2")},
        {},
        COMPANY,
    ).body
    assert same["match"] is True and other["match"] is False
    assert same["similarity"] > same["threshold"] > other["similarity"]
    assert same["face1"]["index"] == 0 and same["face2"]["index"] == 0


def test_compare_takes_embeddings_instead_of_images(rt: Runtime, testdata: Path) -> None:
    def embedding(name: str) -> list[float]:
        body = run_operation(
            rt, "detect", {"image": photo(testdata, name)}, {"return_embedding": True}, COMPANY
        ).body
        return list(body["faces"][0]["embedding"])

    a, b = embedding(OBAMA), embedding(OBAMA2)
    by_vectors = run_operation(rt, "compare", {}, {"embedding1": a, "embedding2": b}, COMPANY)
    assert by_vectors.body["match"] is True
    assert by_vectors.body["face1"] is None and by_vectors.body["face2"] is None
    # One side an image, the other an embedding.
    mixed = run_operation(
        rt, "compare", {"image1": photo(testdata, BIDEN, "image1")}, {"embedding2": a}, COMPANY
    )
    assert mixed.body["match"] is False


def test_compare_with_a_faceless_image_names_that_side(rt: Runtime, testdata: Path) -> None:
    with pytest.raises(FaceplaneError) as info:
        run_operation(
            rt,
            "compare",
            {
                "image1": photo(testdata, OBAMA, "image1"),
                "image2": photo(testdata, NO_FACE, "image2"),
            },
            {},
            COMPANY,
        )
    assert info.value.err is Err.FACE_NOT_FOUND
    assert info.value.details["field"] == "image2"


def test_compare_with_a_face_index_past_the_faces_is_out_of_range(
    rt: Runtime, testdata: Path
) -> None:
    with pytest.raises(FaceplaneError) as info:
        run_operation(
            rt,
            "compare",
            {
                "image1": photo(testdata, GROUP, "image1"),
                "image2": photo(testdata, OBAMA, "image2"),
            },
            {"face_index1": 6},
            COMPANY,
        )
    assert info.value.err is Err.FACE_INDEX_OUT_OF_RANGE
    assert info.value.details["faces"] == 6


# ---- crop ----------------------------------------------------------------------------------


def test_crop_of_a_faceless_photo_is_face_not_found(rt: Runtime, testdata: Path) -> None:
    with pytest.raises(FaceplaneError) as info:
        run_operation(rt, "crop", {"image": photo(testdata, NO_FACE)}, {}, COMPANY)
    assert info.value.err is Err.FACE_NOT_FOUND
    assert info.value.details["field"] == "image"


def test_crop_returns_the_largest_face_and_thumbnails_of_the_right_sizes(
    rt: Runtime, testdata: Path
) -> None:
    result = run_operation(rt, "crop", {"image": photo(testdata, GROUP)}, {}, COMPANY)
    images, faces = result.images, result.body["faces"]
    assert set(images) == {"result", "face0", "thumb1", "thumb2", "thumb_ini1", "thumb_ini2"}
    assert len(faces) == 1 and images["result"] == images["face0"]
    w, h = size_of(images["result"])
    assert w == h  # a square around the face
    assert faces[0]["crop"] == {"image": "face0", "width": w, "height": h}
    # The crop is the face enlarged by the default margin of 0.25 per side.
    box = faces[0]["box"]
    assert abs(w - max(box["width"], box["height"]) * 1.5) <= 1.5
    # Thumbnails never enlarge: the longest side is min(native, 300) and min(native, 100).
    assert size_of(images["thumb1"]) == (min(w, 300), min(h, 300))
    assert size_of(images["thumb2"]) == (min(w, 100), min(h, 100))
    assert size_of(images["thumb_ini1"]) == (300, round(886 * 300 / 1280))
    assert size_of(images["thumb_ini2"]) == (100, round(886 * 100 / 1280))


def test_crop_to_a_fixed_size_with_a_wider_margin(rt: Runtime, testdata: Path) -> None:
    narrow = run_operation(rt, "crop", {"image": photo(testdata, OBAMA)}, {"margin": 0}, COMPANY)
    result = run_operation(
        rt, "crop", {"image": photo(testdata, OBAMA)}, {"size": 128, "margin": 0.5}, COMPANY
    )
    assert size_of(result.images["result"]) == (128, 128)
    assert result.body["faces"][0]["crop"]["width"] == 128
    assert size_of(result.images["thumb1"]) == (128, 128)  # smaller than 300: kept as is
    assert size_of(result.images["thumb2"]) == (100, 100)
    nw, _ = size_of(narrow.images["result"])
    box = narrow.body["faces"][0]["box"]
    assert abs(nw - max(box["width"], box["height"])) <= 1.5  # margin 0: the face box itself


def test_crop_all_faces_cuts_every_face_of_the_group(rt: Runtime, testdata: Path) -> None:
    result = run_operation(
        rt, "crop", {"image": photo(testdata, GROUP)}, {"all_faces": True, "size": 64}, COMPANY
    )
    faces = result.body["faces"]
    assert len(faces) == 6
    for i, face in enumerate(faces):
        assert face["crop"] == {"image": f"face{i}", "width": 64, "height": 64}
        assert size_of(result.images[f"face{i}"]) == (64, 64)
    assert result.images["result"] == result.images["face0"]
    # Thumbnails are of the largest face only.
    assert {k for k in result.images if k.startswith("thumb")} == {
        "thumb1",
        "thumb2",
        "thumb_ini1",
        "thumb_ini2",
    }
