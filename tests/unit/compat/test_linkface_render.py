"""Linkface answers: the operations' native bodies in Linkface's fields, and image errors."""

from __future__ import annotations

from faceplane.compat.linkface import render
from faceplane.errors import Err, FaceplaneError

QUALITY = {"yaw": 1.5, "pitch": -2.0, "roll": 0.5, "sharpness": 0.9}
FACE = {
    "box": {"x": 10.4, "y": 20.6, "width": 100.2, "height": 120.0},
    "score": 0.99,
    # The native API names its points; Linkface's answer lists them in that order.
    "landmarks": {"left_eye_outer": [40, 60], "left_eye_inner": [50, 61]},
    "quality": QUALITY,
}


def test_a_face_is_a_rect_with_confidence_landmarks_and_pose() -> None:
    assert render.render_face(FACE) == {
        "rect": {"left": 10, "top": 21, "right": 111, "bottom": 141},
        "confidence": 0.99,
        "landmarks": [[40, 60], [50, 61]],
        "yaw": 1.5,
        "pitch": -2.0,
        "roll": 0.5,
        "quality": QUALITY,
    }
    assert render.render_face({**FACE, "embedding": [0.1] * 3})["feature"] == [0.1] * 3


def test_detection_lists_the_faces_and_the_image_size() -> None:
    status, body = render.render_detection("r", {"faces": [FACE], "image": {"width": 9}})
    assert status == 200 and body["status"] == "OK" and body["request_id"] == "r"
    assert body["image"] == {"width": 9} and len(body["faces"]) == 1


def test_verification_is_confidence_and_is_same_person() -> None:
    native = {
        "similarity": 0.8,
        "far": 1e-5,
        "match": True,
        "threshold": 0.7,
        "threshold_far": 1e-4,
        "distance": 0.4,
        "model": "m",
    }
    _, body = render.render_verification("r", native)
    assert body == {
        "status": "OK",
        "request_id": "r",
        "confidence": 0.8,
        "is_same_person": True,
        "threshold": 0.7,
        "distance": 0.4,
        "far": 1e-5,
    }


def test_search_gives_the_largest_faces_candidates_best_first() -> None:
    match = {"subject_id": "s", "subject_name": "Ann", "face_token": "f", "similarity": 0.9}
    native = {"faces": [{"matches": [match], "threshold": 0.7}, {"matches": [], "threshold": 0.7}]}
    _, body = render.render_search("r", native)
    assert body["candidates"] == [
        {"person_id": "s", "name": "Ann", "face_id": "f", "confidence": 0.9}
    ]
    assert body["threshold"] == 0.7


def test_an_image_error_names_the_clients_field() -> None:
    exc = FaceplaneError(Err.FACE_NOT_FOUND, "No face was found in `file2`.", field="file2")
    status, body = render.render_error("r", exc)
    assert (status, body["status"], body["image"]) == (400, "NO_FACE_DETECTED", "file2")
    # Not an image error: no `image`, even with a field.
    _, body = render.render_error("r", FaceplaneError(Err.INVALID_ARGUMENT, "x", field="top"))
    assert "image" not in body
