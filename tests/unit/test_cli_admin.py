"""`faceplane admin app ... --expires`: `none`, offsets, and usage errors for bad values."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from faceplane.cli import main
from faceplane.runtime import Runtime
from faceplane.services import accounts
from faceplane.settings import Settings


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The CLI's data folder for this test (read from the environment, as in production)."""
    monkeypatch.setenv("FACEPLANE_DATA_DIR", str(tmp_path))
    return tmp_path


def create_app(capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    """`admin app create --json` with extra arguments; the new APP_ID."""
    assert main(["admin", "app", "create", "--company", "acme", "--json", *extra]) == 0
    return str(json.loads(capsys.readouterr().out)["app_id"])


def stored_expiry(data_dir: Path, app_id: str) -> float | None:
    """The expiry the database holds for the app (epoch seconds)."""
    rt = Runtime.open(Settings(data_dir=data_dir))
    try:
        value = accounts.load_app(rt, None, app_id)["expires_at"]
    finally:
        rt.close()
    return None if value is None else float(value)


def utc(*args: int) -> float:
    return dt.datetime(*args, tzinfo=dt.UTC).timestamp()


def test_an_offset_in_expires_is_honoured(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app_id = create_app(capsys, "--expires", "2030-01-01T00:00:00+05:00")
    assert stored_expiry(data_dir, app_id) == utc(2029, 12, 31, 19)


def test_an_expiry_without_offset_is_utc(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app_id = create_app(capsys)
    assert main(["admin", "app", "limits", app_id, "--expires", "2030-06-01T12:30:00"]) == 0
    assert stored_expiry(data_dir, app_id) == utc(2030, 6, 1, 12, 30)
    assert main(["admin", "app", "limits", app_id, "--expires", "2030-06-01"]) == 0
    assert stored_expiry(data_dir, app_id) == utc(2030, 6, 1)


def test_expires_none_clears_the_expiry(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    app_id = create_app(capsys, "--expires", "2030-01-01T00:00:00Z")
    assert stored_expiry(data_dir, app_id) == utc(2030, 1, 1)
    assert main(["admin", "app", "limits", app_id, "--expires", "none", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["expires_at"] is None
    assert stored_expiry(data_dir, app_id) is None


def test_expires_none_at_creation_means_it_never_expires(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert stored_expiry(data_dir, create_app(capsys, "--expires", "none")) is None


def test_limits_without_expires_leave_the_expiry_alone(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app_id = create_app(capsys, "--expires", "2031-02-03T04:05:06+00:00")
    assert main(["admin", "app", "limits", app_id, "--rate-limit", "7"]) == 0
    assert stored_expiry(data_dir, app_id) == utc(2031, 2, 3, 4, 5, 6)


@pytest.mark.parametrize("value", ["tomorrow", "2030-13-01", "2030-01-01T25:00", ""])
def test_a_bad_expiry_is_a_usage_error(
    data_dir: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    app_id = create_app(capsys)
    with pytest.raises(SystemExit) as exited:
        main(["admin", "app", "limits", app_id, "--expires", value])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "--expires" in err and "ISO 8601" in err and "Traceback" not in err
    with pytest.raises(SystemExit) as exited:
        main(["admin", "app", "create", "--company", "acme", "--expires", value])
    assert exited.value.code == 2
