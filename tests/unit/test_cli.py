"""The `faceplane` command: detect, compare, models and errors-doc, run in-process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from faceplane.cli import main
from faceplane.engine.models.registry import get_space


@pytest.fixture
def astronaut_file(tmp_path: Path, astronaut: bytes) -> Path:
    path = tmp_path / "astronaut.jpg"
    path.write_bytes(astronaut)
    return path


def test_detect_prints_a_table(astronaut_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["detect", str(astronaut_file)]) == 0
    out = capsys.readouterr().out
    assert "1 face(s) in 512×512" in out and "yaw/pitch/roll" in out


def test_detect_json_is_the_api_body(
    astronaut_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["detect", "--json", "--embedding", str(astronaut_file)]) == 0
    body = json.loads(capsys.readouterr().out)
    space = get_space(body["models"]["space"])
    assert len(body["faces"]) == 1 and len(body["faces"][0]["embedding"]) == space.dim


def test_detect_reports_the_code_of_a_broken_file(
    tmp_path: Path, astronaut_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"plain text")
    assert main(["detect", str(bad), str(astronaut_file)]) == 2
    captured = capsys.readouterr()
    assert "IMAGE_CORRUPT" in captured.err
    assert "1 face(s)" in captured.out  # the good file is still processed


def test_compare_same_image_is_same_person(
    astronaut_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["compare", str(astronaut_file), str(astronaut_file)]) == 0
    assert capsys.readouterr().out.startswith("SAME person")


def test_missing_file_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", "/nope/a.jpg", "/nope/b.jpg"]) == 2
    assert "No such file" in capsys.readouterr().err


def test_models_list_shows_every_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("blazeface_full_range", "dlib_hog", "dlib_5pt", "dlib_68pt", "dlib_resnet_onnx"):
        assert name in out


def test_errors_doc_matches_the_committed_page(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["errors-doc"]) == 0
    page = Path(__file__).resolve().parents[2] / "docs" / "errors.md"
    assert capsys.readouterr().out == page.read_text()


def test_settings_doc_matches_the_committed_page(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["settings-doc"]) == 0
    page = Path(__file__).resolve().parents[2] / "docs" / "settings.md"
    assert capsys.readouterr().out == page.read_text(), (
        "docs/settings.md is stale: run `faceplane settings-doc > docs/settings.md`"
    )


def test_enroll_and_search_work_on_the_default_company(
    tmp_path: Path,
    astronaut: bytes,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from faceplane.services import accounts
    from faceplane.services.collections import list_collections
    from faceplane.settings import Settings
    from faceplane.store import Store

    monkeypatch.setenv("FACEPLANE_DATA_DIR", str(tmp_path / "data"))
    store = Store.open(Settings())
    accounts.bootstrap(store, 100)  # what the first server start does
    folder = tmp_path / "people" / "eileen"
    folder.mkdir(parents=True)
    (folder / "a.jpg").write_bytes(astronaut)
    (folder / "broken.jpg").write_bytes(b"not a photo")
    assert main(["enroll", "vip", str(tmp_path / "people")]) == 0
    captured = capsys.readouterr()
    assert "1 face(s) enrolled" in captured.out and "IMAGE_CORRUPT" in captured.err
    company = accounts.find_company(store, "default")
    assert company is not None
    # The collection belongs to the company, so its API keys see it.
    names = [c["name"] for c in list_collections(store, company["id"], 10, None)["collections"]]
    assert names == ["vip"]
    probe = tmp_path / "probe.jpg"
    probe.write_bytes(astronaut)
    assert main(["search", "vip", str(probe), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["faces"][0]["matches"][0]["subject_name"] == "eileen"
