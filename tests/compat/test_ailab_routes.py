"""AILabTools compatible routes: the seed's envelope on every answer, its codes on every error."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ailab_support import (
    ANALYZER,
    BASE,
    BEAUTY,
    COMPARE,
    DEEPFACE,
    NO_CREDENTIALS,
    NO_FACE_PHOTOS,
    SWAP,
    blank_png,
    failed,
    ok,
)
from faceplane.compat.docs import ROUTES_HEADING, ROUTES_PLACEHOLDER
from faceplane.services import accounts
from faceplane.settings import Settings
from support import authed_client

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("ailab") / "data", workers=0)
    with authed_client(settings) as c:
        yield c


def test_face_analyzer_answers_the_success_envelope(client: TestClient, astronaut: bytes) -> None:
    resp = client.post(ANALYZER, files={"image": ("a.jpg", astronaut)}, data={"max_face_num": "3"})
    data = ok(resp)["data"]
    assert data["face_num"] == len(data["faces"]) == 1
    assert data["image"] == {"width": 512, "height": 512}
    face = data["faces"][0]
    assert face["box"]["width"] > 50 and face["score"] > 0.5 and len(face["landmarks"]) == 5


def test_image_errors_have_the_seed_codes(client: TestClient) -> None:
    failed(client.post(ANALYZER, data={"max_face_num": "1"}), "MISSING_PARAMETERS")
    failed(
        client.post(ANALYZER, files={"image": ("a.jpg", b"I am text, not a JPEG.\n")}),
        "FILE_DECODING_FAILURE",
    )
    failed(
        client.post(ANALYZER, files={"image": ("blank.png", blank_png())}),
        "ERROR_NO_FACE_IN_FILE",
        "No face was found in `image`.",
    )
    resp = client.post(
        ANALYZER, files={"image": ("b.png", blank_png())}, data={"max_face_num": "0"}
    )
    failed(resp, "ERROR_PARAMETERS")


@pytest.mark.parametrize("photo", NO_FACE_PHOTOS)
def test_face_analyzer_refuses_a_real_photo_without_a_face_and_charges_nothing(
    client: TestClient, testdata: Path, astronaut: bytes, photo: str
) -> None:
    rt = client.app.state.rt  # type: ignore[attr-defined]
    company = accounts.find_company(rt, "default")
    assert company is not None
    _, key = accounts.create_app(rt, company["id"], f"one credit {photo}", 1000, quota=1)
    metered = {"X-API-Key": key}
    files = {"image": ("p.jpg", (testdata / photo).read_bytes())}
    for _ in range(2):
        resp = client.post(ANALYZER, files=files, headers=metered)
        failed(resp, "ERROR_NO_FACE_IN_FILE", "No face was found in `image`.")
    # The one credit is still there: both refusals were refunded.
    ok(client.post(ANALYZER, files={"image": ("a.jpg", astronaut)}, headers=metered))
    # The native route keeps its own contract: no face is an empty list there.
    native = client.post("/v1/detect", files=files)
    assert native.status_code == 200 and native.json()["faces"] == []
    # AILab's contract is the native option `require_face`, which the task path shares.
    strict = client.post("/v1/detect", files=files, data={"require_face": "true"})
    assert strict.status_code == 422 and strict.json()["error"]["code"] == "FACE_NOT_FOUND"


def test_auth_failures_are_rendered_in_ailab_shape(client: TestClient) -> None:
    body = failed(
        client.get(f"{BASE}/face/group/list", headers=NO_CREDENTIALS), "ERROR_USER_NOT_EXISTS"
    )
    assert "ailabapi-api-key" in body["error_detail"]["message"]
    bad = {**NO_CREDENTIALS, "ailabapi-api-key": "not-a-key"}
    failed(client.get(f"{BASE}/face/group/list", headers=bad), "ERROR_USER_NOT_EXISTS")


def test_ailabs_own_key_header_authenticates(client: TestClient) -> None:
    own = {**NO_CREDENTIALS, "ailabapi-api-key": client.headers["X-API-Key"]}
    ok(client.get(f"{BASE}/face/group/list", headers=own))


def test_framework_errors_are_rendered_in_ailab_shape(client: TestClient) -> None:
    failed(client.get(f"{BASE}/portrait/analysis/no-such-ai"), "ERROR_AI_NOT_EXISTS")
    failed(client.get(ANALYZER), "ERROR_ILLEGAL_OPERATION")
    failed(client.get(f"{BASE}/face/group/list", params={"limit": 0}), "ERROR_PARAMETERS")


def test_compare_same_person_on_real_photos(client: TestClient, testdata: Path) -> None:
    root = testdata / DEEPFACE
    files = {
        "image_target": ("1.jpg", (root / "img1.jpg").read_bytes()),
        "image_template": ("2.jpg", (root / "img2.jpg").read_bytes()),
    }
    data = ok(client.post(COMPARE, files=files))["data"]
    assert data["match"] is True and data["similarity"] >= data["threshold"]
    # The native scale: the default FAR 1e-4 reads 0.7, and the pair's own FAR is below it.
    assert (data["threshold"], data["threshold_far"]) == (0.7, 1e-4)
    assert 0 < data["far"] < data["threshold_far"]
    assert data["face_target"]["box"] and data["face_template"]["box"]
    loose = ok(client.post(COMPARE, files=files, data={"far": "0.001"}))["data"]
    assert (loose["threshold"], loose["threshold_far"]) == (0.6, 1e-3)
    assert "face1" not in data and "face2" not in data


def test_compare_errors_name_ailabs_fields(client: TestClient, astronaut: bytes) -> None:
    failed(
        client.post(COMPARE, files={"image_target": ("a.jpg", astronaut)}),
        "MISSING_PARAMETERS",
        "No image was given in `image_template`.",
    )
    files = {"image_target": ("b.png", blank_png()), "image_template": ("a.jpg", astronaut)}
    failed(
        client.post(COMPARE, files=files),
        "ERROR_NO_FACE_IN_FILE",
        "No face was found in `image_target`.",
    )


@pytest.mark.parametrize(
    ("name", "value", "code"),
    [
        ("enlarge_eye", "101", "ERROR_INVALID_BIG_EYES_PARAMETER"),
        ("thinface", "-1", "ERROR_INVALID_FACE_SLIMMING_PARAMETER"),
        ("smoothing", "soft", "ERROR_INVALID_SMOOTHING_PARAMETER"),
        ("whitening", "nan", "ERROR_INVALID_SKIN_WHITENING_PARAMETER"),
    ],
)
def test_beauty_parameters_are_validated(
    client: TestClient, astronaut: bytes, name: str, value: str, code: str
) -> None:
    resp = client.post(BEAUTY, data={name: value}, files={"image": ("a", astronaut)})
    failed(resp, code, f"`{name}` must be a number from 0 to 100.")


def test_unimplemented_features_answer_that_the_ai_does_not_exist(
    client: TestClient, astronaut: bytes
) -> None:
    params = {"enlarge_eye": "50", "thinface": "0", "smoothing": "100", "whitening": "12.5"}
    failed(
        client.post(BEAUTY, data=params, files={"image": ("a", astronaut)}),
        "ERROR_AI_NOT_EXISTS",
        "Beauty effects are not implemented yet.",
    )
    failed(
        client.post(SWAP, files={"image": ("a", astronaut)}),
        "ERROR_AI_NOT_EXISTS",
        "Face swap is not implemented yet.",
    )
    attrs = {"face_attributes_type": "Age,Gender"}
    failed(
        client.post(ANALYZER, data=attrs, files={"image": ("a", astronaut)}),
        "ERROR_AI_NOT_EXISTS",
        "Face attributes (age, gender, expression, ...) are not implemented.",
    )


def test_docs_list_every_route(client: TestClient) -> None:
    text = (REPO / "docs/compat/ailab.md").read_text(encoding="utf-8")
    routes = text.partition(f"\n{ROUTES_HEADING}\n")[2]
    assert routes and ROUTES_PLACEHOLDER not in routes
    paths = client.get("/openapi.json").json()["paths"]
    ours = {p: ops for p, ops in paths.items() if p.startswith("/compat/ailab/")}
    assert len(ours) == 16 and sum(len(ops) for ops in ours.values()) == 17
    for path, operations in ours.items():
        for method, operation in operations.items():
            assert f"`{method.upper()} {path}`" in routes, (method, path)
            assert operation["tags"] == ["compat-ailab"]
