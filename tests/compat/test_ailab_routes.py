"""AILabTools compatible routes: the seed's envelope on every answer, its codes on every error."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from PIL import Image

from faceplane.compat.ailab.render import code_row
from faceplane.compat.docs import ROUTES_HEADING, ROUTES_PLACEHOLDER
from faceplane.errors import Err
from faceplane.settings import Settings
from support import authed_client

REPO = Path(__file__).resolve().parents[2]
DEEPFACE = "faces/deepface/images"
BASE = "/compat/ailab/api"
ANALYZER = f"{BASE}/portrait/analysis/face-analyzer"
COMPARE = f"{BASE}/portrait/analysis/face-compare"
BEAUTY = f"{BASE}/portrait/effects/face-beauty"
SUBMIT = f"{BASE}/common/async-task"
QUERY = f"{BASE}/common/query-async-task-result"
REVOKE = f"{BASE}/common/revoke-async-task"
NO_CREDENTIALS = {"X-API-Key": ""}

# The seed's table: error_detail.code → (HTTP status, code_message, error_code_str).
SEED = {
    "MISSING_PARAMETERS": (400, "Missing parameters.", "MISSING_PARAMETERS"),
    "PARAMETERS_CANNOT_EMPTY": (400, "Parameters cannot be empty.", "PARAMETERS_CANNOT_EMPTY"),
    "ERROR_PARAMETERS": (400, "Invalid parameters.", "ERROR_PARAMETERS"),
    "FILE_DECODING_FAILURE": (400, "File decoding failed.", "FILE_DECODING_FAILURE"),
    "ERROR_NO_FACE_IN_FILE": (
        422,
        "No face detected in the file.",
        "FILE_CONTENT_NON_COMPLIANCE",
    ),
    "ERROR_USER_NOT_EXISTS": (401, "The user does not exist.", "ERROR_USER_NOT_EXISTS"),
    "ERROR_AI_NOT_EXISTS": (
        404,
        "AI does not exist or has been deactivated, please contact the platform.",
        "ERROR_AI_NOT_EXISTS",
    ),
    "ERROR_ILLEGAL_OPERATION": (405, "Illegal operation.", "ERROR_ILLEGAL_OPERATION"),
    "ERROR_USER_GROUP_ALREADY_EXISTS": (
        409,
        "User group already exists.",
        "ERROR_USER_GROUP_ALREADY_EXISTS",
    ),
    "ERROR_USER_ALREADY_EXISTS": (409, "User already exists.", "ERROR_USER_ALREADY_EXISTS"),
    "ERROR_USER_GROUP_NOT_FOUND": (404, "User group not found.", "ERROR_USER_GROUP_NOT_FOUND"),
    "ERROR_USER_NOT_FOUND": (404, "User not found.", "ERROR_USER_NOT_FOUND"),
    "ERROR_FACE_TOKEN_NOT_FOUND": (404, "Face token not found.", "ERROR_FACE_TOKEN_NOT_FOUND"),
    "ERROR_RESOURCE_NOT_FOUND": (404, "Resource not found.", "ERROR_RESOURCE_NOT_FOUND"),
    "ERROR_TASK_REVOKED": (409, "Task has already been revoked.", "ERROR_TASK_REVOKED"),
    "ERROR_TASK_REVOCATION_FAILED": (
        400,
        "Task revocation failed.",
        "ERROR_TASK_REVOCATION_FAILED",
    ),
    "ERROR_INVALID_BIG_EYES_PARAMETER": (
        422,
        "Big eyes parameter does not meet requirements.",
        "UNSUPPORTED_PARAMETER_VALUES",
    ),
    "ERROR_INVALID_FACE_SLIMMING_PARAMETER": (
        422,
        "Face slimming parameter does not meet requirements.",
        "UNSUPPORTED_PARAMETER_VALUES",
    ),
    "ERROR_INVALID_SMOOTHING_PARAMETER": (
        422,
        "Smoothing parameter does not meet requirements.",
        "UNSUPPORTED_PARAMETER_VALUES",
    ),
    "ERROR_INVALID_SKIN_WHITENING_PARAMETER": (
        422,
        "Skin whitening parameter does not meet requirements.",
        "UNSUPPORTED_PARAMETER_VALUES",
    ),
}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("ailab") / "data", workers=1)
    with authed_client(settings) as c:
        yield c


@pytest.fixture(scope="module")
def idle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """No workers: tasks stay queued, to be queried and revoked."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("ailab-idle") / "data", workers=0)
    with authed_client(settings) as c:
        yield c


def blank_png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (160, 160), (90, 100, 110)).save(buf, format="PNG")
    return buf.getvalue()


def ok(resp: Response) -> dict[str, Any]:
    """Check the seed's success envelope; return the body."""
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    rid = resp.headers["x-request-id"]
    assert list(body)[:4] == ["request_id", "log_id", "error_code", "error_detail"]
    assert body["request_id"] == rid and body["log_id"] == rid
    assert body["error_code"] == 0
    assert body["error_detail"] == {
        "status_code": 200,
        "code": "",
        "code_message": "",
        "message": "",
    }
    assert "error_code_str" not in body and "error_msg" not in body
    return body


def failed(resp: Response, code: str, message: str | None = None) -> dict[str, Any]:
    """Check every field of the seed's error envelope for `code`; return the body."""
    status, code_message, code_str = SEED[code]
    assert resp.status_code == status, resp.text
    body: dict[str, Any] = resp.json()
    rid = resp.headers["x-request-id"]
    assert list(body) == [
        "request_id",
        "log_id",
        "error_code",
        "error_detail",
        "error_code_str",
        "error_msg",
    ]
    assert body["request_id"] == rid and body["log_id"] == rid
    assert body["error_code"] == status
    detail = body["error_detail"]
    assert list(detail) == ["status_code", "code", "code_message", "message"]
    assert (detail["status_code"], detail["code"]) == (status, code)
    assert detail["code_message"] == code_message
    assert detail["message"] and (message is None or detail["message"] == message)
    assert body["error_code_str"] == code_str
    assert body["error_msg"] == f"{code_row(code_str)[1]} - {detail['message']}"
    return body


def not_implemented(resp: Response) -> None:
    """The catalogue's AILab code for NOT_IMPLEMENTED, in the full envelope (never a 500)."""
    code = Err.NOT_IMPLEMENTED.ailab
    status, description = code_row(code)
    assert resp.status_code == status != 500, resp.text
    body = resp.json()
    assert body["error_code"] == status and body["request_id"] == resp.headers["x-request-id"]
    assert body["error_detail"]["code"] == code
    assert body["error_detail"]["code_message"] == description


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
    assert data["face_target"]["box"] and data["face_template"]["box"]
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


def test_face_database_round_trip(client: TestClient, testdata: Path, astronaut: bytes) -> None:
    root = testdata / DEEPFACE
    db = f"{BASE}/face"
    group = ok(client.post(f"{db}/group/create", data={"group_id": "stars"}))["data"]
    assert group["group_id"] == "stars" and group["user_num"] == group["face_num"] == 0
    failed(
        client.post(f"{db}/group/create", data={"group_id": "stars"}),
        "ERROR_USER_GROUP_ALREADY_EXISTS",
    )
    failed(client.post(f"{db}/group/create", data={}), "MISSING_PARAMETERS")
    failed(client.post(f"{db}/group/create", data={"group_id": " "}), "PARAMETERS_CANNOT_EMPTY")
    assert "stars" in ok(client.get(f"{db}/group/list"))["data"]["group_id_list"]

    user = {"group_id": "stars", "uid": "angelina"}
    assert ok(client.post(f"{db}/user/add", data={**user, "user_info": "actor"}))["data"]["uid"]
    failed(client.post(f"{db}/user/add", data=user), "ERROR_USER_ALREADY_EXISTS")
    failed(
        client.post(f"{db}/user/add", data={**user, "group_id": "nope"}),
        "ERROR_USER_GROUP_NOT_FOUND",
    )
    users = ok(client.get(f"{db}/user/list", params={"group_id": "stars"}))["data"]["users"]
    assert users == [{"uid": "angelina", "face_num": 0}]

    added = client.post(
        f"{db}/face/add", data=user, files={"image": ("1.jpg", (root / "img1.jpg").read_bytes())}
    )
    token = ok(added)["data"]["face_token"]
    assert token and ok(added)["data"]["faces"][0]["face_token"] == token
    failed(
        client.post(
            f"{db}/face/add", data={**user, "uid": "nobody"}, files={"image": ("a", astronaut)}
        ),
        "ERROR_USER_NOT_FOUND",
    )

    probe = {"image": ("2.jpg", (root / "img2.jpg").read_bytes())}
    faces = ok(client.post(f"{db}/search", data={"group_id": "stars"}, files=probe))["data"][
        "faces"
    ]
    best = faces[0]["user_list"][0]
    assert best["uid"] == "angelina" and best["face_token"] == token
    assert best["score"] >= faces[0]["threshold"]
    stranger = client.post(
        f"{db}/search", data={"group_id": "stars"}, files={"image": ("a", astronaut)}
    )
    assert ok(stranger)["data"]["faces"][0]["user_list"] == []
    failed(client.post(f"{db}/search", data={"group_id": "stars"}), "MISSING_PARAMETERS")

    gone = {"group_id": "stars", "face_token": "no-such-token"}
    failed(client.post(f"{db}/face/delete", data=gone), "ERROR_FACE_TOKEN_NOT_FOUND")
    ok(client.post(f"{db}/face/delete", data={"group_id": "stars", "face_token": token}))
    ok(client.post(f"{db}/user/delete", data=user))
    failed(client.post(f"{db}/user/delete", data=user), "ERROR_USER_NOT_FOUND")
    ok(client.post(f"{db}/group/delete", data={"group_id": "stars"}))
    failed(
        client.post(f"{db}/group/delete", data={"group_id": "stars"}), "ERROR_USER_GROUP_NOT_FOUND"
    )


def test_async_task_done_failed_and_not_revocable(
    client: TestClient, testdata: Path, astronaut: bytes
) -> None:
    submitted = ok(
        client.post(SUBMIT, data={"operation": "detect"}, files={"image": ("a", astronaut)})
    )
    assert submitted["task_type"] == "async"
    task_id = submitted["task_id"]
    done = ok(client.get(QUERY, params={"task_id": task_id, "wait_s": 30}))
    assert done["task_id"] == task_id and done["task_status"] == 2
    assert len(done["data"]["faces"]) == 1
    failed(client.post(REVOKE, data={"task_id": task_id}), "ERROR_TASK_REVOCATION_FAILED")

    broken = client.post(
        SUBMIT, data={"operation": "detect"}, files={"image": ("x.jpg", b"not an image")}
    )
    broken_id = ok(broken)["task_id"]
    failed(client.get(QUERY, params={"task_id": broken_id, "wait_s": 30}), "FILE_DECODING_FAILURE")

    root = testdata / DEEPFACE
    files = {
        "image_target": ("1.jpg", (root / "img1.jpg").read_bytes()),
        "image_template": ("2.jpg", (root / "img2.jpg").read_bytes()),
    }
    compared = ok(client.post(SUBMIT, data={"operation": "compare"}, files=files))["task_id"]
    result = ok(client.get(QUERY, params={"task_id": compared, "wait_s": 60}))
    assert result["task_status"] == 2 and result["data"]["match"] is True


def test_async_task_argument_errors(client: TestClient, astronaut: bytes) -> None:
    failed(client.get(QUERY), "MISSING_PARAMETERS")
    failed(client.get(QUERY, params={"task_id": "no-such-task"}), "ERROR_RESOURCE_NOT_FOUND")
    failed(client.post(SUBMIT, files={"image": ("a", astronaut)}), "MISSING_PARAMETERS")
    enroll = {"operation": "enroll", "group_id": "nope", "uid": "x"}
    failed(
        client.post(SUBMIT, data=enroll, files={"image": ("a", astronaut)}),
        "ERROR_USER_GROUP_NOT_FOUND",
    )


def test_queued_task_is_revoked_once(idle: TestClient, astronaut: bytes) -> None:
    task_id = ok(
        idle.post(SUBMIT, data={"operation": "detect"}, files={"image": ("a", astronaut)})
    )["task_id"]
    queued = ok(idle.get(QUERY, params={"task_id": task_id}))
    assert queued["task_status"] == 0 and "data" not in queued
    assert ok(idle.post(REVOKE, data={"task_id": task_id}))["status"] == "canceled"
    failed(idle.delete(REVOKE, params={"task_id": task_id}), "ERROR_TASK_REVOKED")
    failed(idle.get(QUERY, params={"task_id": task_id}), "ERROR_TASK_REVOKED")


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


def test_unimplemented_features_answer_not_implemented(
    client: TestClient, astronaut: bytes
) -> None:
    params = {"enlarge_eye": "50", "thinface": "0", "smoothing": "100", "whitening": "12.5"}
    not_implemented(client.post(BEAUTY, data=params, files={"image": ("a", astronaut)}))
    not_implemented(
        client.post(f"{BASE}/portrait/effects/face-swap", files={"image": ("a", astronaut)})
    )
    attrs = {"face_attributes_type": "Age,Gender"}
    not_implemented(client.post(ANALYZER, data=attrs, files={"image": ("a", astronaut)}))


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
