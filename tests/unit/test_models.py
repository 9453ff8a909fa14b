"""The model registry and pool: install state, listing, and missing models."""

from __future__ import annotations

from pathlib import Path

import pytest

from faceplane.engine.models.install import is_installed, sha256_file
from faceplane.engine.models.pool import ModelPool
from faceplane.engine.models.registry import MODELS
from faceplane.settings import Settings
from support import authed_client


def test_every_pinned_model_is_installed_with_its_checksum(settings: Settings) -> None:
    for spec in MODELS:
        assert is_installed(settings.models_dir, spec), spec.name
        if spec.file and spec.sha256:
            assert sha256_file(settings.models_dir / spec.file) == spec.sha256


def test_a_damaged_model_file_is_not_installed(tmp_path: Path, settings: Settings) -> None:
    spec = next(m for m in MODELS if m.name == "blazeface_full_range")
    assert spec.file
    (tmp_path / spec.file).write_bytes(b"not the model")
    assert not is_installed(tmp_path, spec)


def test_status_lists_task_version_sha_licence_and_state(settings: Settings) -> None:
    rows = {r["name"]: r for r in ModelPool(settings.models_dir).status()}
    assert set(rows) == {m.name for m in MODELS}
    assert rows["dlib_68pt"]["licence"].startswith("iBUG")
    assert rows["dlib_resnet_onnx"]["sha256"] and rows["dlib_resnet_onnx"]["present"]
    assert not rows["dlib_resnet"]["loaded"]
    # Training-data terms travel with each model: MobileFaceNet's MS1M origin is stated.
    assert "MS1M" in rows["mobilefacenet"]["training_data"]
    assert rows["dlib_68pt"]["training_data"].startswith("iBUG")


def test_models_list_shows_the_training_data(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    from faceplane.cli import main

    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "training data" in out and "MS1M-derived" in out
    with authed_client(settings) as client:
        listed = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
    assert "MS1M" in listed["mobilefacenet"]["training_data"]


def test_server_starts_without_models_and_answers_model_unavailable(
    tmp_path: Path, astronaut: bytes
) -> None:
    with authed_client(Settings(models_dir=tmp_path, data_dir=tmp_path / "data")) as client:
        health = client.get("/v1/health").json()
        assert health["status"] == "degraded"
        assert "blazeface_full_range" in health["missing_models"]
        resp = client.post("/v1/detect", files={"image": ("a.jpg", astronaut)})
        err = resp.json()["error"]
        assert err["code"] == "MODEL_UNAVAILABLE"
        assert err["details"]["model"] == "blazeface_full_range"
        listed = client.get("/v1/models").json()["models"]
        assert not any(m["present"] for m in listed if m["sha256"] is not None)


def test_dlib_and_onnx_embedders_agree_through_the_pipeline(
    settings: Settings, astronaut: bytes
) -> None:
    from faceplane.runtime import Runtime
    from faceplane.services.faces import DetectRequest, detect_faces
    from faceplane.services.images import ImageSource

    vectors = {}
    for name in ("onnx", "dlib"):
        rt = Runtime.open(settings.model_copy(update={"embedder": name}))
        body = detect_faces(
            rt, ImageSource("image", data=astronaut), DetectRequest(return_embedding=True)
        )
        vectors[body["models"]["embedder"]] = body["faces"][0]["embedding"]
    assert set(vectors) == {"dlib_resnet_onnx", "dlib_resnet"}
    diff = max(
        abs(a - b) for a, b in zip(vectors["dlib_resnet_onnx"], vectors["dlib_resnet"], strict=True)
    )
    assert diff < 1e-5
