"""A real Faceplane server for tests: `faceplane serve` in a subprocess on a free loopback port.

Tests of what a client meets over a socket (durability, attacks, slow peers) use it; tests of
behaviour use the in-process TestClient (tests/support.py).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from support import cli_app_key


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """`faceplane serve` in a subprocess, on its own data folder."""

    def __init__(self, data_dir: Path, log: Path | None = None, **env: str) -> None:
        self.port = free_port()
        self.log = log  # the server's stderr (its log lines) is appended here, when given
        self.env = {
            **os.environ,
            "FACEPLANE_DATA_DIR": str(data_dir),
            "FACEPLANE_PORT": str(self.port),
            "FACEPLANE_WORKERS": "1",
            "FACEPLANE_MAINTENANCE_INTERVAL_S": "0.2",
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.base = f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        if not hasattr(self, "key"):
            self.key = cli_app_key(self.env, "e2e", 100_000)
            self.headers = {"X-API-Key": self.key}
        with self.log.open("ab") if self.log else open(os.devnull, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "faceplane.cli", "serve"],
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,
            )
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                httpx.get(self.base + "/v1/health", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.2)
        raise RuntimeError("server did not start")

    def kill9(self) -> None:
        assert self.proc
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)
        if self.proc:
            # Worker processes notice their parent is gone; make sure none outlives the test.
            subprocess.run(["pkill", "-9", "-g", str(self.proc.pid)], check=False)

    def children(self) -> list[int]:
        assert self.proc
        out = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.proc.pid:
                cmd = (stat.parent / "cmdline").read_bytes()
                if b"spawn_main" in cmd:
                    out.append(int(stat.parent.name))
        return out


def wait_until(pred: Any, seconds: float) -> bool:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.2)
    return False
