"""The settings reference page and the package's own description say what is true."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from faceplane.settings import Settings, render_settings_markdown

REPO = Path(__file__).resolve().parents[2]


def settings_rows() -> dict[str, str]:
    """The settings page's default column, by variable."""
    rows = {}
    for line in render_settings_markdown().splitlines():
        if line.startswith("| `FACEPLANE_"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0].strip("`")] = cells[1].strip("`")
    return rows


def test_every_setting_has_a_real_default_on_the_page() -> None:
    rows = settings_rows()
    assert len(rows) == len(Settings.model_fields)
    assert "PydanticUndefined" not in render_settings_markdown()
    assert rows["FACEPLANE_DATA_DIR"] == "~/.local/share/faceplane"
    assert rows["FACEPLANE_MODELS_DIR"] == "~/.cache/faceplane/models"


def test_the_page_does_not_depend_on_who_generates_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = render_settings_markdown()
    monkeypatch.setenv("HOME", str(tmp_path / "someone else"))
    assert render_settings_markdown() == before


def test_the_package_description_claims_nothing_the_readme_calls_not_built() -> None:
    description = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["description"]
    found = re.search(r"^Not built yet: ([^(.]+)", (REPO / "README.md").read_text(), re.M)
    assert found, "README.md lost its `Not built yet:` line"
    missing = [item.strip() for item in found.group(1).split(",")]
    assert "liveness" in missing
    for item in missing:
        for word in item.split():
            if word != "the":
                assert not re.search(rf"\b{word}\b", description, re.I), (word, description)
    for built in ("detect", "compare", "search"):
        assert built in description
