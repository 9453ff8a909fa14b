"""Helpers shared by the benchmarks: where the test photos are, table printing, and a real
`faceplane serve` with an API key to time over HTTP."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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


def free_port() -> int:
    """An unused local TCP port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    """The q-quantile of durations in seconds, in milliseconds."""
    import numpy as np

    return 1000 * float(np.quantile(values, q))


@contextmanager
def serving(timeout_s: float = 30.0) -> Iterator[tuple[Any, str]]:
    """`faceplane serve` on a free port with a throw-away data folder, authentication on and
    default settings: yields (an httpx client carrying a new app's API key, the base URL).
    The server's log is printed when the block fails."""
    import httpx

    port = free_port()
    folder = tempfile.TemporaryDirectory(prefix="faceplane-bench-")
    env = {**os.environ, "FACEPLANE_PORT": str(port), "FACEPLANE_DATA_DIR": folder.name}
    headers = {"X-API-Key": create_key(env)}
    log_path = Path(folder.name) / "server.log"
    log = log_path.open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "faceplane.cli", "serve"], env=env, stdout=log, stderr=log
    )
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(timeout=60, headers=headers) as client:
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    client.get(base + "/v1/health")
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            yield client, base
    except BaseException:
        log.flush()
        sys.stderr.write(log_path.read_text()[-3000:])
        raise
    finally:
        server.terminate()
        server.wait(10)
        log.close()
        folder.cleanup()
