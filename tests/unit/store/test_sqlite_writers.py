"""Several processes writing one SQLite database never fail with "database is locked"."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

from faceplane.settings import Settings


def _writer(data_dir: str, collection_id: str, n: int, tag: int) -> int:
    from faceplane.runtime import Runtime
    from faceplane.services import collections as col

    settings = Settings(data_dir=Path(data_dir))
    rt = Runtime.open(settings)
    for i in range(n):
        # Reads (the collection, the subject count) then writes: the pattern that fails at
        # once in a deferred SQLite transaction when another process wrote in between.
        col.create_subject(rt, "o", collection_id, f"p{tag}-{i}")
    return n


def test_concurrent_read_then_write_transactions_all_succeed(tmp_path: Path) -> None:
    from faceplane.runtime import Runtime
    from faceplane.services import collections as col

    settings = Settings(data_dir=tmp_path)
    rt = Runtime.open(settings)
    cid = col.create_collection(rt, "o", "busy", "gallery")["id"]
    with mp.get_context("spawn").Pool(4) as pool:
        done = pool.starmap(_writer, [(str(tmp_path), cid, 40, t) for t in range(4)])
    assert done == [40] * 4
    assert col.get_collection(rt, "o", cid)["subjects"] == 160
