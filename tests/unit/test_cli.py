"""The `faceplane` command: detect, compare, models and errors-doc, run in-process."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from faceplane.cli import main
from faceplane.client import far_text
from faceplane.engine.models.registry import get_space
from faceplane.engine.similarity import tables_from_json


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
    from faceplane.runtime import Runtime
    from faceplane.services import accounts
    from faceplane.services.collections import list_collections
    from faceplane.settings import Settings

    monkeypatch.setenv("FACEPLANE_DATA_DIR", str(tmp_path / "data"))
    rt = Runtime.open(Settings())
    accounts.bootstrap(rt, 100)  # what the first server start does
    folder = tmp_path / "people" / "eileen"
    folder.mkdir(parents=True)
    (folder / "a.jpg").write_bytes(astronaut)
    (folder / "broken.jpg").write_bytes(b"not a photo")
    assert main(["enroll", "vip", str(tmp_path / "people")]) == 0
    captured = capsys.readouterr()
    assert "1 face(s) enrolled" in captured.out and "IMAGE_CORRUPT" in captured.err
    company = accounts.find_company(rt, "default")
    assert company is not None
    # The collection belongs to the company, so its API keys see it.
    names = [c["name"] for c in list_collections(rt, company["id"], 10, None)["collections"]]
    assert names == ["vip"]
    probe = tmp_path / "probe.jpg"
    probe.write_bytes(astronaut)
    assert main(["search", "vip", str(probe), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["faces"][0]["matches"][0]["subject_name"] == "eileen"
    # `index rebuild` finds the collection by name and rebuilds it from the database.
    (vip,) = [c["id"] for c in list_collections(rt, company["id"], 10, None)["collections"]]
    assert main(["index", "rebuild", "vip"]) == 0
    assert capsys.readouterr().out.splitlines() == [f"{vip}: 1 vector(s)"]
    rt.close()


def test_compare_prints_the_scale_to_two_decimals_and_the_far(
    testdata: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = testdata / "faces/face_recognition/examples"
    a, b = str(root / "obama.jpg"), str(root / "obama2.jpg")
    assert main(["compare", a, b]) == 0
    line = capsys.readouterr().out.strip()
    # e.g. "SAME person: similarity 0.92 (FAR 3e-7); threshold 0.70 (FAR 1e-4), distance ..."
    assert re.match(
        r"SAME person: similarity 0\.\d\d \(FAR \de-\d+\); threshold 0\.70 \(FAR 1e-4\)", line
    )
    assert main(["compare", "--far", "1e-6", "--json", a, b]) == 0
    body = json.loads(capsys.readouterr().out)
    assert (body["threshold"], body["threshold_far"]) == (0.9, 1e-6)
    assert main(["compare", "--far", "1e-9", a, b]) == 2
    assert "INVALID_ARGUMENT" in capsys.readouterr().err


def test_far_text_reads_as_a_person_would_write_it() -> None:
    assert [far_text(f) for f in (0.37, 0.05, 1e-4, 3.3e-7, 2.6e-7)] == [
        "0.37",
        "0.05",
        "1e-4",
        "3e-7",
        "3e-7",
    ]


def test_models_calibrate_fits_and_writes_a_table(
    tmp_path: Path, testdata: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The re-fit command end to end, on a small LFW-shaped folder of other photos."""
    src = testdata / "faces/deepface/images"
    lfw = tmp_path / "lfw"
    pairs = []
    for row in csv.DictReader((src / "identities.csv").open()):
        who = row["identity"].replace(" ", "_")
        folder = lfw / "images" / who
        folder.mkdir(parents=True, exist_ok=True)
        n = len(list(folder.iterdir())) + 1
        (folder / f"{who}_{n:04d}.jpg").symlink_to(src / row["file"])
        pairs.append(f"{who}\t{n}\t{n}")
    (lfw / "pairs.txt").write_text("1\n" + "\n".join(pairs) + "\n")
    out = tmp_path / "tables"
    args = ["models", "calibrate", "--lfw", str(lfw), "--pairs", "pairs.txt", "--modes", "none"]
    assert main([*args, "--workers", "1", "--out", str(out), "--write"]) == 0
    printed = capsys.readouterr().out
    assert "| 0.001 |" in printed and "wrote" in printed
    tables = tables_from_json(json.loads((out / "dlib_resnet_v1.json").read_text()))
    cal = tables["none"]
    assert cal.threshold(1e-3) == pytest.approx(0.6) and cal.min_far == 1e-6
    # About 2,000 impostor pairs: below FAR 2.5e-2 nothing is measurable, the tail model says it.
    assert {k.source for k in cal.knots[1:-1] if k.far <= 1e-3} == {"tail model"}
    assert main(["models", "calibrate", "--lfw", str(lfw), "--spaces", "nope_v1"]) == 2
    assert main(["models", "calibrate", "--lfw", str(lfw), "--modes", "sideways"]) == 2
    assert main(["models", "calibrate", "--lfw", str(tmp_path / "nowhere")]) == 2
    assert main(["models", "calibrate"]) == 2
