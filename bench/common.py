"""Helpers shared by the benchmarks: where the test photos are, and table printing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def testdata_dir() -> Path:
    """FACEPLANE_TESTDATA, else ../shared/testdata beside the repository."""
    env = os.environ.get("FACEPLANE_TESTDATA")
    path = Path(env) if env else REPO.parent / "shared" / "testdata"
    if not path.is_dir():
        raise SystemExit(f"test photos not found at {path}: set FACEPLANE_TESTDATA")
    return path


def print_table(header: list[str], rows: list[list[str]]) -> None:
    """Print a Markdown table."""
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def create_key(env: dict[str, str]) -> str:
    """A KEY for a new app (no rate limit to speak of) in the data folder named by `env`."""
    made = subprocess.run(
        [
            sys.executable,
            "-m",
            "faceplane.cli",
            "admin",
            "app",
            "create",
            "--company",
            "bench",
            "--rate-limit",
            "100000000",
            "--json",
        ],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return str(json.loads(made.stdout)["key"])
