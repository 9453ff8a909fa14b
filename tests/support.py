"""Helpers for tests (importable: `tests` is on pytest's python path)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi.testclient import TestClient

from faceplane.app import create_app
from faceplane.services import accounts
from faceplane.settings import Settings


@contextmanager
def authed_client(settings: Settings, rate_limit: int = 1_000_000) -> Iterator[TestClient]:
    """A test client on a real app, sending the KEY of a fresh app of the first company."""
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        rt = client.app.state.rt  # type: ignore[attr-defined]
        company = accounts.find_company(rt, "default")
        assert company is not None
        _, key = accounts.create_app(rt, company["id"], "tests", rate_limit)
        client.headers["X-API-Key"] = key
        yield client


def cli_app_key(env: dict[str, str], company: str, rate_limit: int) -> str:
    """A new app's KEY, made by `faceplane admin app create` on the data folder of `env`."""
    made = subprocess.run(
        [
            sys.executable,
            "-m",
            "faceplane.cli",
            "admin",
            "app",
            "create",
            "--company",
            company,
            "--rate-limit",
            str(rate_limit),
            "--json",
        ],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return str(json.loads(made.stdout)["key"])
