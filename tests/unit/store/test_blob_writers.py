"""Blobs written to one key by several writers at once (a result document first asked for
by two polls): every write succeeds and a reader only ever sees a whole blob."""

from __future__ import annotations

import threading
from pathlib import Path

from faceplane.store.blobs import LocalBlobs


def test_concurrent_writers_of_one_key_all_succeed_and_leave_a_whole_blob(tmp_path: Path) -> None:
    blobs = LocalBlobs(tmp_path / "blobs")
    data = [bytes([i]) * 4_000_000 for i in range(8)]
    errors: list[Exception] = []
    start = threading.Barrier(len(data))

    def write(payload: bytes) -> None:
        start.wait()
        try:
            for _ in range(3):
                blobs.put("tasks/t/result/result.json", payload)
        except Exception as exc:  # the test reports every failure
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(d,)) for d in data]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert blobs.get("tasks/t/result/result.json") in data
    assert [p.name for p in (tmp_path / "blobs/tasks/t/result").iterdir()] == ["result.json"]
