"""Shared fixtures: settings on the installed models, the app client, and real test photos."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from faceplane.runtime import Runtime
from faceplane.settings import Settings
from support import authed_client

REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    """No test touches the user's own data folder: commands and servers that fall back to the
    default (`faceplane detect`, subprocesses that inherit the environment) get a scratch one."""
    if "FACEPLANE_DATA_DIR" not in os.environ:
        import tempfile

        os.environ["FACEPLANE_DATA_DIR"] = tempfile.mkdtemp(prefix="faceplane-tests-")


def testdata_dir() -> Path | None:
    """FACEPLANE_TESTDATA, else ../shared/testdata beside the repository, if it exists."""
    env = os.environ.get("FACEPLANE_TESTDATA")
    path = Path(env) if env else REPO.parent / "shared" / "testdata"
    return path if path.is_dir() else None


@pytest.fixture(scope="session")
def testdata() -> Path:
    """The real-photo folder; tests that need it skip visibly when it is absent."""
    path = testdata_dir()
    if path is None:
        pytest.skip("FACEPLANE_TESTDATA not set and ../shared/testdata absent: real-photo test")
    return path


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Server settings on the installed models, with a throw-away data folder."""
    return Settings(data_dir=tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="session")
def research_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """A client on a server with FACEPLANE_MODEL_SET=research (the 68-point landmarks)."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("research"), model_set="research")
    with authed_client(settings) as c:
        yield c


@pytest.fixture(scope="session")
def rt(settings: Settings) -> Runtime:
    """One Runtime object (and model pool) for the whole session."""
    return Runtime.open(settings)


@pytest.fixture(scope="session")
def client(settings: Settings) -> Iterator[TestClient]:
    """An authenticated test client on a real app with real models."""
    with authed_client(settings) as c:
        yield c


def astronaut_jpeg() -> bytes:
    """skimage's public-domain astronaut portrait (Eileen Collins), as JPEG bytes."""
    from skimage import data

    buf = io.BytesIO()
    Image.fromarray(np.asarray(data.astronaut())).save(buf, format="JPEG", quality=92)
    return buf.getvalue()


@pytest.fixture(scope="session")
def astronaut() -> bytes:
    """The shipped real face photo."""
    return astronaut_jpeg()
