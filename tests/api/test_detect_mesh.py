"""POST /v1/detect with landmarks=mesh: the 468-point face mesh over HTTP, and without it."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from faceplane.engine.models.registry import MODELS
from faceplane.settings import Settings
from support import authed_client

MESH_FILE = "face_landmark.tflite"


def detect(client: TestClient, data: bytes, **params: object) -> dict:
    resp = client.post("/v1/detect", files={"image": ("x.jpg", data)}, data=params)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_landmarks_mesh_returns_468_triples_beside_the_five_points(
    client: TestClient, astronaut: bytes
) -> None:
    body = detect(client, astronaut, landmarks="mesh")
    face = body["faces"][0]
    assert len(face["landmarks"]) == 5 and "left_eye_outer" in face["landmarks"]
    mesh = face["mesh"]
    assert len(mesh) == 468 and all(len(p) == 3 for p in mesh)
    assert all(round(v, 1) == v for p in mesh for v in p)
    box = face["box"]
    inside = [p for p in mesh if box["x"] <= p[0] <= box["x"] + box["width"] and box["y"] <= p[1]]
    assert len(inside) > 0.9 * 468
    assert face["mesh_score"] > 0.9
    q = face["quality"]
    assert set(q["eye_openness"]) == {"left", "right"} and 0 <= q["mouth_openness"] < 1
    assert body["models"]["mesh"] == "mediapipe_face_mesh"
    # Without asking, the mesh still measures quality but is not returned.
    plain = detect(client, astronaut)["faces"][0]
    assert "mesh" not in plain and "mesh_score" not in plain
    assert plain["quality"] == q


def test_landmarks_mesh_as_json_and_a_bad_value_is_refused(
    client: TestClient, astronaut: bytes
) -> None:
    import base64

    image = {"base64": base64.b64encode(astronaut).decode()}
    resp = client.post("/v1/detect", json={"image": image, "landmarks": "mesh"})
    assert resp.status_code == 200 and len(resp.json()["faces"][0]["mesh"]) == 468
    for bad in ("meshes", "3", 468):
        resp = client.post("/v1/detect", json={"image": image, "landmarks": bad})
        assert resp.status_code == 400, bad
        assert resp.json()["error"]["code"] == "INVALID_ARGUMENT"


def _models_without_mesh(settings: Settings, folder: Path) -> Path:
    """A models folder with every installed file except the mesh model."""
    folder.mkdir()
    for path in settings.models_dir.iterdir():
        if path.name != MESH_FILE:
            (folder / path.name).symlink_to(path)
    return folder


def test_without_the_mesh_model_mesh_is_unavailable_and_quality_falls_back(
    tmp_path: Path, settings: Settings, astronaut: bytes
) -> None:
    assert any(m.file == MESH_FILE for m in MODELS)
    models = _models_without_mesh(settings, tmp_path / "models")
    without_mesh = Settings(models_dir=models, data_dir=tmp_path / "data", model_set="research")
    with authed_client(without_mesh) as client:
        resp = client.post(
            "/v1/detect", files={"image": ("a.jpg", astronaut)}, data={"landmarks": "mesh"}
        )
        err = resp.json()["error"]
        assert err["code"] == "MODEL_UNAVAILABLE"
        assert err["details"]["model"] == "mediapipe_face_mesh"
        body = detect(client, astronaut)
        q = body["faces"][0]["quality"]
        assert "eye_openness" not in q and "mouth_openness" not in q
        assert abs(q["yaw"]) < 30 and "mesh" not in body["models"]
        assert len(detect(client, astronaut, landmarks="68")["faces"][0]["landmarks"]) == 68
