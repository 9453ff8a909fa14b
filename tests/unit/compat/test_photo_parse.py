"""Pho.to requests: the credentials check and the task a call's first method runs."""

from __future__ import annotations

import pytest

from faceplane.compat.photo import parse, render
from faceplane.errors import Err, FaceplaneError
from faceplane.services.tasks import TaskSpec


def call(
    method: str, params: str = "", extra: str = "", image: str = "<image_url>u</image_url>"
) -> str:
    return (
        f"<image_process_call>{image}<methods_list><method><name>{method}</name>"
        f"<params>{params}</params></method></methods_list>{extra}</image_process_call>"
    )


def spec(xml: str) -> TaskSpec:
    return parse.task_spec(parse.parse_image_process_call(xml))


def test_face_detection_runs_detect_on_the_image_url_with_its_params() -> None:
    task = spec(call("face_detection", "max_faces=3;min_face_size=40"))
    assert task.operation == "detect"
    assert task.options == {"max_faces": "3", "min_face_size": "40"}
    [(slot, source)] = task.images.items()
    # The image's errors name the tag the client filled in.
    assert (slot, source.field, source.url) == ("image", "image_url", "u")


def test_every_method_name_maps_to_an_operation_with_known_params() -> None:
    assert set(parse.METHODS.values()) <= set(parse.PARAMS)


def test_result_size_sizes_a_crop_unless_its_params_do() -> None:
    sized = "<result_size>200</result_size>"
    assert spec(call("face_crop", "", sized)).options == {"size": 200}
    assert spec(call("face_crop", "size=64", sized)).options == {"size": "64"}


@pytest.mark.parametrize(
    ("xml", "err", "photo"),
    [
        (call("teleport"), Err.INVALID_ARGUMENT, ("Error", -3)),
        (call("face_detection", "margin=1"), Err.INVALID_ARGUMENT, ("Error", -3)),
        (call("collage", "template_name=1051"), Err.TEMPLATE_NOT_FOUND, ("Error", -1003)),
        (
            call("face_crop", image='<image_url rect="1,2,3,4">u</image_url>'),
            Err.BAD_FACE_RECT,
            ("Error", -1001),
        ),
    ],
    ids=["unknown-method", "unknown-param", "template", "rect"],
)
def test_what_cannot_run_is_the_seed_error(xml: str, err: Err, photo: tuple[str, int]) -> None:
    with pytest.raises(FaceplaneError) as info:
        spec(xml)
    assert info.value.err is err
    assert render.photo_status(info.value.err) == photo


@pytest.mark.parametrize(
    "given",
    [
        {"app_id": "", "key": "k", "sign_data": "", "data": "<x/>"},
        {"app_id": "a", "key": "", "sign_data": "", "data": "<x/>"},
        {"app_id": "a", "key": "k", "sign_data": "", "data": ""},
    ],
    ids=["no-app-id", "no-key-nor-signature", "no-data"],
)
def test_missing_credentials_are_security_error_614(given: dict[str, str]) -> None:
    with pytest.raises(FaceplaneError) as info:
        parse.require_credentials(**given)
    assert render.photo_status(info.value.err) == ("SecurityError", 614)


def test_a_key_or_a_signature_is_enough() -> None:
    parse.require_credentials("a", "k", "", "<x/>")
    parse.require_credentials("a", "", "sig", "<x/>")
