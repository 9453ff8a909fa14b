"""POST /v1/detect on real photos, over HTTP."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from faceplane.engine.models.registry import get_space
from faceplane.services import accounts

SAMPLES = "faces/compreface/embedding-calculator/sample_images"
BROKEN = "faces/compreface/embedding-calculator/src/services/imgtools/test/files"


def detect(client: TestClient, data: bytes, **params: object) -> dict:
    resp = client.post("/v1/detect", files={"image": ("x.jpg", data)}, data=params)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_astronaut_has_one_face_with_landmarks_and_quality(
    client: TestClient, astronaut: bytes
) -> None:
    body = detect(client, astronaut)
    assert body["image"] == {"width": 512, "height": 512}
    assert len(body["faces"]) == 1
    face = body["faces"][0]
    box = face["box"]
    # Eileen Collins' face sits in the upper middle of the 512×512 portrait.
    assert 150 < box["x"] < 260 and 40 < box["y"] < 150 and 70 < box["width"] < 170
    assert len(face["landmarks"]) == 5
    q = face["quality"]
    assert q["face_size"] >= 70 and 0 < q["sharpness"] <= 1 and 0 < q["brightness"] < 1
    assert abs(q["yaw"]) < 30 and abs(q["roll"]) < 20
    # The default detector (`auto`) is RetinaFace when it is installed, as it is here.
    assert body["models"]["detector"] == "retinaface_mnet025"
    assert list(face["keypoints"]) == [
        "right_eye",
        "left_eye",
        "nose_tip",
        "mouth_right",
        "mouth_left",
    ]
    assert body["request_id"]


def test_blazeface_stays_available_by_name(client: TestClient, astronaut: bytes) -> None:
    body = detect(client, astronaut, detector="blazeface")
    assert body["models"]["detector"] == "blazeface_full_range"
    face = body["faces"][0]
    assert 150 < face["box"]["x"] < 260 and 40 < face["box"]["y"] < 150
    assert list(face["keypoints"]) == [
        "right_eye",
        "left_eye",
        "nose_tip",
        "mouth",
        "right_ear",
        "left_ear",
    ]
    assert abs(face["quality"]["yaw"]) < 30 and abs(face["quality"]["roll"]) < 20


def test_embedding_and_68_landmarks_on_request(
    research_client: TestClient, astronaut: bytes
) -> None:
    body = detect(research_client, astronaut, return_embedding="true", landmarks="68")
    face = body["faces"][0]
    assert len(face["landmarks"]) == 68
    assert abs(sum(v * v for v in face["embedding"]) - 1.0) < 1e-3
    assert body["models"]["embedder"] in (
        "dlib_resnet_onnx+mobilefacenet",
        "dlib_resnet_onnx",
        "dlib_resnet",
    )
    assert len(body["faces"][0]["embedding"]) == get_space(body["models"]["space"]).dim


def test_the_default_model_set_refuses_the_research_only_68_points(
    client: TestClient, astronaut: bytes
) -> None:
    resp = client.post("/v1/detect", files={"image": ("a.jpg", astronaut)}, data={"landmarks": 68})
    assert resp.status_code == 503, resp.text
    err = resp.json()["error"]
    assert err["code"] == "MODEL_UNAVAILABLE"
    assert err["details"] == {"model": "dlib_68pt", "model_set": "default"}
    assert "FACEPLANE_MODEL_SET=research" in err["message"]
    listed = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
    assert listed["dlib_68pt"]["model_set"] == "research" and not listed["dlib_68pt"]["allowed"]
    assert listed["dlib_5pt"]["allowed"]


def test_json_base64_input_equals_multipart(client: TestClient, astronaut: bytes) -> None:
    resp = client.post(
        "/v1/detect", json={"image": {"base64": base64.b64encode(astronaut).decode()}}
    )
    assert resp.status_code == 200
    assert resp.json()["faces"][0]["box"] == detect(client, astronaut)["faces"][0]["box"]


def test_raw_image_body_is_accepted(client: TestClient, astronaut: bytes) -> None:
    resp = client.post("/v1/detect", content=astronaut, headers={"content-type": "image/jpeg"})
    assert resp.status_code == 200 and len(resp.json()["faces"]) == 1


def test_hog_fallback_detector_finds_the_astronaut(client: TestClient, astronaut: bytes) -> None:
    body = detect(client, astronaut, detector="hog")
    assert body["models"]["detector"] == "dlib_hog"
    best = max(body["faces"], key=lambda f: f["score"])
    assert 150 < best["box"]["x"] < 260 and 40 < best["box"]["y"] < 150


@pytest.mark.parametrize(
    ("path", "count"),
    [
        ("faces/insightface/t1.jpg", 6),
        (f"{SAMPLES}/016_8.jpg", 8),
        (f"{SAMPLES}/017_0.jpg", 0),
        ("faces/dlib/examples/faces/dogs.jpg", 0),
    ],
)
def test_face_counts_on_real_photos(
    client: TestClient, testdata: Path, path: str, count: int
) -> None:
    body = detect(client, (testdata / path).read_bytes())
    assert len(body["faces"]) == count
    areas = [f["box"]["width"] * f["box"]["height"] for f in body["faces"]]
    assert areas == sorted(areas, reverse=True)


def test_max_faces_and_min_face_size_filter(client: TestClient, testdata: Path) -> None:
    data = (testdata / "faces/insightface/t1.jpg").read_bytes()
    assert len(detect(client, data, max_faces=2)["faces"]) == 2
    assert len(detect(client, data, min_face_size=5000)["faces"]) == 0


def test_exif_rotated_liveness_samples_are_detected_upright(
    client: TestClient, testdata: Path
) -> None:
    for name in ("image_T1.jpg", "image_F1.jpg", "image_F2.jpg"):
        body = detect(client, (testdata / "liveness/silent_face/sample" / name).read_bytes())
        assert len(body["faces"]) >= 1, name
        face = body["faces"][0]
        # Upright: the eyes are above the mouth and the head is not rolled by 90°.
        assert abs(face["quality"]["roll"]) < 30, (name, face["quality"])
        kp = face["keypoints"]
        for eye in ("right_eye", "left_eye"):
            for corner in ("mouth_right", "mouth_left"):
                assert kp[eye][1] < kp[corner][1], (name, eye, corner)


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("corrupted.png", "IMAGE_CORRUPT"),
        ("empty.png", "IMAGE_CORRUPT"),
        ("truncated.jpg", "IMAGE_CORRUPT"),
        ("einstein.ico", "IMAGE_FORMAT_UNSUPPORTED"),
    ],
)
def test_broken_files_get_their_code_over_http(
    client: TestClient, testdata: Path, name: str, code: str
) -> None:
    resp = client.post(
        "/v1/detect", files={"image": (name, (testdata / BROKEN / name).read_bytes())}
    )
    assert resp.status_code in (400, 415, 422)
    body = resp.json()
    assert body["error"]["code"] == code
    assert resp.headers["x-request-id"] == body["request_id"]


def test_text_file_named_jpg_is_corrupt(client: TestClient) -> None:
    resp = client.post("/v1/detect", files={"image": ("photo.jpg", b"I am text, not a JPEG.\n")})
    assert resp.json()["error"]["code"] == "IMAGE_CORRUPT"


def test_one_by_one_image_is_too_small(client: TestClient) -> None:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buf, format="PNG")
    resp = client.post("/v1/detect", files={"image": ("tiny.png", buf.getvalue())})
    assert resp.json()["error"]["code"] == "IMAGE_DIMENSION_TOO_SMALL"


def test_url_to_loopback_is_forbidden(client: TestClient) -> None:
    resp = client.post("/v1/detect", json={"image": {"url": "http://127.0.0.1:8080/x.jpg"}})
    assert resp.status_code == 403
    assert resp.json()["error"]["code"] == "URL_FORBIDDEN"


def test_missing_image_is_missing_argument(client: TestClient) -> None:
    resp = client.post("/v1/detect", json={"max_faces": 3})
    assert resp.json()["error"]["code"] == "MISSING_ARGUMENT"


def test_bad_option_is_invalid_argument(client: TestClient, astronaut: bytes) -> None:
    resp = client.post("/v1/detect", files={"image": ("a.jpg", astronaut)}, data={"max_faces": "0"})
    assert resp.status_code == 400
    err = resp.json()["error"]
    assert err["code"] == "INVALID_ARGUMENT" and err["details"]["errors"][0]["field"] == "max_faces"


def test_invalid_json_is_invalid_argument(client: TestClient) -> None:
    resp = client.post("/v1/detect", content=b"{nope", headers={"content-type": "application/json"})
    assert resp.json()["error"]["code"] == "INVALID_ARGUMENT"


def test_non_utf8_json_is_encoding_error(client: TestClient) -> None:
    resp = client.post(
        "/v1/detect", content=b'{"image": "\xff\xfe"}', headers={"content-type": "application/json"}
    )
    assert resp.json()["error"]["code"] == "ENCODING_ERROR"


def test_the_five_landmarks_are_named_from_the_subjects_point_of_view(
    client: TestClient, astronaut: bytes
) -> None:
    face = detect(client, astronaut)["faces"][0]
    marks, keys = face["landmarks"], face["keypoints"]
    assert list(marks) == [
        "left_eye_outer",
        "left_eye_inner",
        "right_eye_outer",
        "right_eye_inner",
        "nose_base",
    ]
    # The subject's right eye is on the image's left, as in the detector's keypoints.
    assert marks["right_eye_outer"][0] < marks["right_eye_inner"][0] < marks["left_eye_inner"][0]
    assert marks["left_eye_inner"][0] < marks["left_eye_outer"][0]
    for eye in ("right_eye", "left_eye"):
        outer, inner = marks[f"{eye}_outer"][0], marks[f"{eye}_inner"][0]
        assert min(outer, inner) < keys[eye][0] < max(outer, inner), eye
    # The base of the nose sits below RetinaFace's nose tip and above both mouth corners, the
    # subject's right corner on the image's left.
    assert keys["nose_tip"][1] < marks["nose_base"][1]
    assert marks["nose_base"][1] < min(keys["mouth_right"][1], keys["mouth_left"][1])
    assert keys["mouth_right"][0] < keys["nose_tip"][0] < keys["mouth_left"][0]


def test_the_68_landmarks_are_named_by_ibug_region(
    research_client: TestClient, astronaut: bytes
) -> None:
    five = detect(research_client, astronaut)["faces"][0]["landmarks"]
    marks = detect(research_client, astronaut, landmarks="68")["faces"][0]["landmarks"]
    assert len(marks) == 68
    assert list(marks)[:2] == ["jaw_1", "jaw_2"] and list(marks)[-1] == "inner_lip_8"
    assert marks["jaw_1"][0] < marks["jaw_17"][0]  # from the subject's right ear to the left
    assert marks["right_eye_1"][0] < marks["right_eye_4"][0] < marks["left_eye_1"][0]
    # The two models agree on the points they share.
    for five_name, name in (
        ("right_eye_outer", "right_eye_1"),
        ("right_eye_inner", "right_eye_4"),
        ("left_eye_inner", "left_eye_1"),
        ("left_eye_outer", "left_eye_4"),
        ("nose_base", "nose_lower_3"),
    ):
        assert max(abs(a - b) for a, b in zip(five[five_name], marks[name], strict=True)) < 4


def test_linkface_keeps_its_landmarks_a_list_in_the_named_order(
    client: TestClient, astronaut: bytes
) -> None:
    rt = client.app.state.rt  # type: ignore[attr-defined]
    company = accounts.find_company(rt, "default")
    assert company is not None
    app, key = accounts.create_app(rt, company["id"], "linkface landmarks", 1000)
    resp = client.post(
        "/compat/linkface/face/detection",
        data={"api_id": app["app_id"], "api_secret": key},
        files={"file": ("a.jpg", astronaut)},
        headers={"X-API-Key": ""},
    )
    assert resp.status_code == 200, resp.text
    native = detect(client, astronaut)["faces"][0]["landmarks"]
    assert resp.json()["faces"][0]["landmarks"] == list(native.values())
