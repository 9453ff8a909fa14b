"""store.modes: the data folder is its owner's alone, made so at creation whatever the umask,
and tightened when a folder an older version left world-readable is opened."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from faceplane.settings import Settings
from faceplane.store import Store
from faceplane.store.vectors import CollectionIndex


@pytest.fixture
def umask_0() -> Iterator[None]:
    old = os.umask(0)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def tree_modes(root: Path) -> dict[str, set[int]]:
    """The modes of every folder (root included) and of every file under root."""
    paths = [root, *root.rglob("*")]
    return {
        "dirs": {mode(p) for p in paths if p.is_dir() and not p.is_symlink()},
        "files": {mode(p) for p in paths if p.is_file() and not p.is_symlink()},
    }


def test_a_store_made_under_umask_0_is_private(tmp_path: Path, umask_0: None) -> None:
    store = Store.open(Settings(data_dir=tmp_path / "data"))
    store.blobs.put("tasks/t1/input/image.jpg", b"face")
    with store.db.connect() as conn:  # the -wal and -shm files exist once SQLite writes
        conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS t (x)")
        conn.commit()
    assert tree_modes(tmp_path / "data") == {"dirs": {0o700}, "files": {0o600}}


def test_saved_indexes_exact_and_hnsw_are_0600(tmp_path: Path, umask_0: None) -> None:
    vecs = np.random.default_rng(0).standard_normal((40, 128)).astype(np.float32)
    for threshold, name in ((1_000, "exact.index"), (10, "hnsw.index")):
        index = CollectionIndex(128, ann_threshold=threshold)
        index.add(np.arange(40, dtype=np.int64), vecs)
        index.save(tmp_path / name)
        assert index.kind == name.split(".")[0] and mode(tmp_path / name) == 0o600


def test_opening_a_world_readable_data_folder_makes_it_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = Store.open(Settings(data_dir=data))
    store.blobs.put("collections/c1/faces/f1.jpg", b"crop")
    store.db.dispose()
    # What an older version left: everything readable by everyone.
    for path in [data, *data.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    outside = tmp_path / "outside.txt"
    outside.write_text("not ours")
    os.chmod(outside, 0o644)
    (data / "link").symlink_to(outside)
    Store.open(Settings(data_dir=data))
    assert tree_modes(data) == {"dirs": {0o700}, "files": {0o600}}
    assert mode(outside) == 0o644  # a symbolic link is not followed


def test_a_data_folder_under_a_missing_parent_is_created_private(tmp_path: Path) -> None:
    data = tmp_path / "a" / "b" / "data"
    Store.open(Settings(data_dir=data))
    assert mode(data) == 0o700 and mode(data / "blobs") == 0o700
