"""Task throughput and latency: embedded (local workers) vs distributed (Celery), 1 and 2 workers.

    python bench/tasks.py [--n 60] [--m 40] [--modes local,celery]

For each mode and worker count a real server (and, for Celery, a real `faceplane worker`) is
started on a fresh data folder / database. Throughput: a batch of --n detect tasks on one
testdata photo, from submission until the last finishes. Latency: --m single tasks one after
another, submit + long-poll, p50/p99. The overhead is the task p50 minus the p50 of the
synchronous /v1/detect on the same photo, measured against the same server.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import create_key, free_port, print_table, testdata_dir

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/"


def services_answer() -> bool:
    """True when PostgreSQL and Redis answer on their standard ports."""
    for port in (5432, 6379):
        with socket.socket() as s:
            s.settimeout(1)
            if s.connect_ex(("127.0.0.1", port)) != 0:
                return False
    return True


def _pg_admin(sql: str) -> None:
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as c:
        c.execute(sql)


class Deployment:
    """A server (and Celery worker) on fresh storage."""

    def __init__(self, mode: str, workers: int) -> None:
        self.mode, self.workers = mode, workers
        self.tmp = tempfile.TemporaryDirectory(prefix="faceplane-bench-")
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "FACEPLANE_DATA_DIR": self.tmp.name,
            "FACEPLANE_PORT": str(self.port),
            "FACEPLANE_TASK_MAX_QUEUE": "100000",
            "FACEPLANE_BATCH_MAX_ITEMS": "1000",
        }
        self.db = None
        if mode == "celery":
            self.db = f"fp_bench_{uuid.uuid4().hex[:8]}"
            _pg_admin(f"CREATE DATABASE {self.db}")
            self.env |= {
                "FACEPLANE_EXECUTOR": "celery",
                "FACEPLANE_DATABASE_URL": PG + self.db,
                "FACEPLANE_BROKER_URL": "redis://127.0.0.1:6379/15",
                "FACEPLANE_WORKERS": "0",
            }
        else:
            self.env["FACEPLANE_WORKERS"] = str(workers)
        self.procs: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Deployment:
        cmd = [sys.executable, "-m", "faceplane.cli"]
        self.headers = {"X-API-Key": create_key(self.env)}
        self.procs.append(
            subprocess.Popen(
                [*cmd, "serve"], env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
        )
        if self.mode == "celery":
            self.procs.append(
                subprocess.Popen(
                    [*cmd, "worker", "--concurrency", str(self.workers)],
                    env=self.env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        for _ in range(300):
            try:
                httpx.get(self.base + "/v1/health", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        return self

    def __exit__(self, *exc: object) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            p.wait(timeout=30)
        if self.db:
            _pg_admin(f"DROP DATABASE IF EXISTS {self.db} WITH (FORCE)")
        self.tmp.cleanup()


def _ts(iso: str) -> float:
    return datetime.datetime.fromisoformat(iso).timestamp()


def run_one(client: httpx.Client, base: str, item: dict) -> float:
    """Submit one task and long-poll it; return the end-to-end seconds."""
    start = time.perf_counter()
    task = client.post(base + "/v1/tasks", json=item).json()
    state = client.get(f"{base}/v1/tasks/{task['request_id']}", params={"wait_s": 60}).json()
    assert state["status"] == "succeeded", state
    return time.perf_counter() - start


def measure(dep: Deployment, photo: bytes, n: int, m: int) -> list[str]:
    """Throughput, task latency and sync latency on one deployment."""
    item = {"operation": "detect", "input": {"image": {"base64": base64.b64encode(photo).decode()}}}
    with httpx.Client(timeout=120, headers=dep.headers) as client:
        for _ in range(4):  # warm the workers' models
            run_one(client, dep.base, item)
        start = time.perf_counter()
        resp = client.post(dep.base + "/v1/tasks:batch", json=[item] * n).json()
        ids = [t["request_id"] for t in resp["tasks"]]
        states = []
        for task_id in ids:
            state = client.get(f"{dep.base}/v1/tasks/{task_id}", params={"wait_s": 60}).json()
            assert state["status"] == "succeeded"
            states.append(state)
        rate = n / (time.perf_counter() - start)
        # Execution alone: from the first task a worker took to the last one it finished
        # (the batch's upload and the client's polling are not part of it).
        first = min(_ts(st["started_at"]) for st in states)
        last = max(_ts(st["finished_at"]) for st in states)
        exec_rate = n / (last - first)
        lat = [run_one(client, dep.base, item) for _ in range(m)]
        sync = []
        for _ in range(m):
            t0 = time.perf_counter()
            client.post(
                dep.base + "/v1/detect", files={"image": ("a.jpg", photo)}
            ).raise_for_status()
            sync.append(time.perf_counter() - t0)
    p50, p99 = (1000 * float(np.quantile(lat, q)) for q in (0.5, 0.99))
    s50 = 1000 * float(np.median(sync))
    return [
        f"{rate:.1f}",
        f"{exec_rate:.1f}",
        f"{p50:.1f}",
        f"{p99:.1f}",
        f"{s50:.1f}",
        f"{p50 - s50:+.1f}",
    ]


def main() -> None:
    """Run every deployment and print one table."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=60)
    ap.add_argument("--m", type=int, default=40)
    ap.add_argument("--modes", default="local,celery")
    args = ap.parse_args()
    photo = (testdata_dir() / "faces/face_recognition/examples/obama-480p.jpg").read_bytes()
    rows = []
    for mode in args.modes.split(","):
        if mode == "celery" and not services_answer():
            print("SKIPPED celery: PostgreSQL or Redis does not answer")
            continue
        for workers in (1, 2):
            with Deployment(mode, workers) as dep:
                rows.append([mode, str(workers), *measure(dep, photo, args.n, args.m)])
    print(f"detect tasks on obama-480p.jpg: {args.n} per batch, {args.m} sequential")
    print_table(
        [
            "executor",
            "workers",
            "tasks/s (with upload)",
            "tasks/s (execution)",
            "task p50 ms",
            "task p99 ms",
            "sync p50 ms",
            "overhead p50 ms",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
