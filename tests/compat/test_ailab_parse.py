"""AILab's request parsing: arguments, option names, and its contract made native options."""

from __future__ import annotations

import pytest

from faceplane.compat.ailab import parse
from faceplane.errors import Err, FaceplaneError


def code(exc: pytest.ExceptionInfo[FaceplaneError]) -> Err:
    """The catalogue member an expected failure raised."""
    return exc.value.err


def test_text_arg_tells_missing_blank_and_too_long_apart() -> None:
    assert parse.text_arg({"a": " x "}, "a") == "x"
    assert parse.text_arg({"a": 7}, "a") == "7"
    assert parse.text_arg({}, "a", required=False) is None
    for values, err in (
        ({}, Err.MISSING_ARGUMENT),
        ({"a": "  "}, Err.PARAMETERS_EMPTY),
        ({"a": True}, Err.INVALID_TYPE),
        ({"a": "x" * 201}, Err.INVALID_ARGUMENT),
    ):
        with pytest.raises(FaceplaneError) as caught:
            parse.text_arg(values, "a")
        assert code(caught) is err


@pytest.mark.parametrize("value", ["-0.1", "100.5", "soft", "nan", True])
def test_beauty_strengths_out_of_range_answer_their_own_code(value: object) -> None:
    with pytest.raises(FaceplaneError) as caught:
        parse.check_beauty({"thinface": value})
    assert code(caught) is Err.BEAUTY_FACE_SLIMMING_INVALID


def test_beauty_strengths_in_range_pass() -> None:
    parse.check_beauty({"enlarge_eye": "0", "thinface": 100, "smoothing": "", "whitening": 12.5})


def test_json_object_reads_text_or_objects() -> None:
    assert parse.json_object('{"k": 1}', "options") == {"k": 1}
    assert parse.json_object({"k": 1}, "options") == {"k": 1}
    assert parse.json_object(None, "options") == {}
    for bad in ("[1]", "{", 3):
        with pytest.raises(FaceplaneError) as caught:
            parse.json_object(bad, "options")
        assert code(caught) is Err.INVALID_ARGUMENT


def test_detect_options_rename_ailabs_fields_and_require_a_face() -> None:
    options = parse.operation_options("detect", {"max_face_num": "2", "landmarks": "68"})
    assert options == {"max_faces": "2", "landmarks": "68", "require_face": True}
    with pytest.raises(FaceplaneError) as caught:
        parse.operation_options("detect", {"face_attributes_type": "Age"})
    assert code(caught) is Err.NOT_IMPLEMENTED


def test_search_and_enroll_options_use_native_names() -> None:
    assert parse.operation_options("search", {"max_user_num": "1", "far": "0.5"}) == {
        "k": "1",
        "far": "0.5",
    }
    assert parse.operation_options("enroll", {"face": 0})["face"] == "0"
    # Compare has no AILab-only options, and no face requirement to add.
    assert parse.operation_options("compare", {"face_index1": "1"}) == {"face_index1": "1"}
