"""services/params.py: each operation's options, their defaults, bounds and refusals."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from faceplane.errors import Err, FaceplaneError
from faceplane.services.operations import get_operation, validate_options
from faceplane.services.params import (
    BlacklistParams,
    CompareParams,
    CropParams,
    DetectParams,
    EnrollParams,
    SearchParams,
)

ENROLL = {"collection_id": "c1", "subject_id": "s1"}


def valid(operation: str, options: dict[str, Any]) -> Any:
    """The options model `validate_options` makes for `operation`."""
    return validate_options(get_operation(operation), options)


def refused(operation: str, options: dict[str, Any]) -> FaceplaneError:
    """The error `validate_options` raises for `operation` and `options`."""
    with pytest.raises(FaceplaneError) as info:
        valid(operation, options)
    return info.value


# ---- which model each operation takes ------------------------------------------------------


@pytest.mark.parametrize(
    ("operation", "model"),
    [
        ("detect", DetectParams),
        ("compare", CompareParams),
        ("crop", CropParams),
        ("enroll", EnrollParams),
        ("search", SearchParams),
        ("blacklist_check", BlacklistParams),
    ],
)
def test_each_operation_validates_into_its_own_params_model(
    operation: str, model: type[BaseModel]
) -> None:
    options = ENROLL if operation == "enroll" else {"collection_id": "c1"}
    assert type(valid(operation, options)) is model


# ---- defaults ------------------------------------------------------------------------------


def test_detect_defaults_leave_the_servers_settings_in_force() -> None:
    p = valid("detect", {})
    assert (p.max_faces, p.min_face_size, p.det_threshold, p.detector) == (None,) * 4
    assert p.landmarks == 5 and p.return_embedding is False


def test_compare_defaults_take_the_largest_face_of_each_image() -> None:
    p = valid("compare", {})
    assert (p.face_index1, p.face_index2) == (0, 0)
    assert (p.embedding1, p.embedding2) == (None, None)
    assert p.landmarks == 5  # compare takes every detect option too


def test_crop_defaults_are_a_quarter_margin_the_native_size_and_one_face() -> None:
    p = valid("crop", {})
    assert (p.margin, p.size, p.all_faces) == (0.25, None, False)


def test_enroll_defaults_take_the_largest_face_and_the_servers_crop_setting() -> None:
    p = valid("enroll", ENROLL)
    assert (p.collection_id, p.subject_id, p.face, p.keep_crop) == ("c1", "s1", "largest", None)


def test_search_and_blacklist_defaults_return_five_per_face_at_the_default_far() -> None:
    s = valid("search", {"collection_id": "c1"})
    assert (s.k, s.far, s.all_faces, s.embedding, s.face_token) == (5, None, False, None, None)
    b = valid("blacklist_check", {})
    assert (b.k, b.far, b.embedding) == (5, None, None)


# ---- accepted values -----------------------------------------------------------------------


def test_form_style_strings_are_read_as_their_types() -> None:
    # Multipart forms and vendor dialects send every option as text.
    p = valid(
        "crop",
        {"max_faces": "3", "det_threshold": "0.5", "landmarks": "68", "all_faces": "true"},
    )
    assert (p.max_faces, p.det_threshold, p.landmarks, p.all_faces) == (3, 0.5, 68, True)
    assert valid("detect", {"landmarks": "5"}).landmarks == 5
    assert valid("detect", {"landmarks": "Mesh"}).landmarks == "mesh"


@pytest.mark.parametrize(
    ("operation", "options"),
    [
        ("detect", {"max_faces": 1}),
        ("detect", {"max_faces": 1000}),
        ("detect", {"min_face_size": 0}),
        ("detect", {"det_threshold": 0.0}),
        ("detect", {"det_threshold": 1.0}),
        ("detect", {"landmarks": 68}),
        ("detect", {"landmarks": 5}),
        ("detect", {"landmarks": "mesh"}),
        ("detect", {"detector": "hog"}),
        ("detect", {"detector": "blazeface"}),
        ("detect", {"detector": "retinaface"}),
        ("detect", {"detector": "auto"}),
        ("crop", {"margin": 0.0}),
        ("crop", {"margin": 2.0}),
        ("crop", {"size": 16}),
        ("crop", {"size": 2048}),
        ("enroll", {**ENROLL, "face": "all"}),
        ("enroll", {**ENROLL, "face": "0"}),
        ("enroll", {**ENROLL, "face": "12"}),
        ("search", {"collection_id": "c", "k": 1}),
        ("search", {"collection_id": "c", "k": 100}),
        ("search", {"collection_id": "c", "far": 1e-4}),
        ("blacklist_check", {"k": 100, "far": 0.999}),
        ("compare", {"face_index1": 3, "embedding2": [0.5] * 128}),
        ("compare", {"far": 1e-6}),
    ],
)
def test_values_at_the_bounds_are_accepted(operation: str, options: dict[str, Any]) -> None:
    p = valid(operation, options)
    for name, value in options.items():
        assert getattr(p, name) == value


def test_unknown_options_are_ignored_not_refused() -> None:
    # Vendor dialects pass their own extra fields along with ours.
    p = valid("detect", {"max_faces": 2, "vendor_flag": "x"})
    assert p.max_faces == 2 and not hasattr(p, "vendor_flag")


# ---- refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operation", "options", "field"),
    [
        ("detect", {"max_faces": 0}, "max_faces"),
        ("detect", {"max_faces": 1001}, "max_faces"),
        ("detect", {"max_faces": "many"}, "max_faces"),
        ("detect", {"min_face_size": -1}, "min_face_size"),
        ("detect", {"det_threshold": -0.01}, "det_threshold"),
        ("detect", {"det_threshold": 1.01}, "det_threshold"),
        ("detect", {"det_threshold": float("nan")}, "det_threshold"),
        ("detect", {"landmarks": 7}, "landmarks"),
        ("detect", {"landmarks": "meshes"}, "landmarks"),
        ("detect", {"landmarks": "468"}, "landmarks"),
        ("detect", {"landmarks": True}, "landmarks"),
        ("detect", {"detector": "cnn"}, "detector"),
        ("detect", {"return_embedding": "perhaps"}, "return_embedding"),
        ("compare", {"face_index1": -1}, "face_index1"),
        ("compare", {"face_index2": -1}, "face_index2"),
        ("compare", {"embedding1": "0.1,0.2"}, "embedding1"),
        ("compare", {"embedding2": [0.1, "x"]}, "embedding2.1"),
        ("crop", {"margin": -0.1}, "margin"),
        ("crop", {"margin": 2.5}, "margin"),
        ("crop", {"size": 15}, "size"),
        ("crop", {"size": 2049}, "size"),
        ("crop", {"size": 64.5}, "size"),
        ("enroll", {"subject_id": "s"}, "collection_id"),
        ("enroll", {"collection_id": "c"}, "subject_id"),
        ("enroll", {**ENROLL, "face": "biggest"}, "face"),
        ("enroll", {**ENROLL, "face": "-1"}, "face"),
        ("enroll", {**ENROLL, "face": "1 "}, "face"),
        ("search", {}, "collection_id"),
        ("search", {"collection_id": "c", "k": 0}, "k"),
        ("search", {"collection_id": "c", "k": 101}, "k"),
        ("search", {"collection_id": "c", "far": 0}, "far"),
        ("search", {"collection_id": "c", "far": 1}, "far"),
        ("blacklist_check", {"k": 0}, "k"),
        ("blacklist_check", {"far": 1.5}, "far"),
        ("compare", {"far": 0}, "far"),
        ("compare", {"far": 1}, "far"),
        ("compare", {"far": "often"}, "far"),
    ],
)
def test_a_bad_value_is_an_invalid_argument_naming_its_field(
    operation: str, options: dict[str, Any], field: str
) -> None:
    err = refused(operation, options)
    assert err.err is Err.INVALID_ARGUMENT
    assert [e["field"] for e in err.details["errors"]] == [field]
    assert field in err.message
    assert all(e["problem"] for e in err.details["errors"])


def test_every_bad_field_is_named_at_once() -> None:
    err = refused("crop", {"max_faces": 0, "landmarks": 3, "margin": 9, "size": 1, "detector": "x"})
    fields = {e["field"] for e in err.details["errors"]}
    assert fields == {"max_faces", "landmarks", "margin", "size", "detector"}
    assert err.message.startswith("Invalid value for: ")
    for name in fields:
        assert name in err.message


def test_an_enroll_without_its_targets_names_both_missing_fields() -> None:
    err = refused("enroll", {})
    assert err.err is Err.INVALID_ARGUMENT
    assert [e["field"] for e in err.details["errors"]] == [
        "collection_id",
        "subject_id",
    ]
