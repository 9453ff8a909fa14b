"""The per-process index registry: catch-up from the database, saved files, the ANN threshold."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from sqlalchemy import func, insert, select

from faceplane.settings import Settings
from faceplane.store import Store
from faceplane.store.db import collections, face_removals, faces, subjects, write_tx

DIM = 128
CID = "c1"


def open_store(data_dir: Path, ann_threshold: int) -> Store:
    """A store on `data_dir` whose indexes turn HNSW at `ann_threshold` faces."""
    return Store.open(Settings(data_dir=data_dir, index_ann_threshold=ann_threshold))


def unit_vectors(n: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def add_faces(store: Store, vectors: np.ndarray) -> list[int]:
    """Insert a collection (once), a subject and one face row per vector; return their seqs."""
    now = time.time()
    with write_tx(store.db) as conn:
        if conn.execute(select(collections.c.id).where(collections.c.id == CID)).first() is None:
            conn.execute(
                insert(collections).values(
                    id=CID,
                    company_id="co",
                    name="c",
                    kind="gallery",
                    model="dlib_resnet_v1",
                    description="",
                    created_at=now,
                    updated_at=now,
                )
            )
        sid = f"s{now}"
        conn.execute(
            insert(subjects).values(
                id=sid, collection_id=CID, name=sid, created_at=now, updated_at=now
            )
        )
        first = conn.execute(select(func.coalesce(func.max(faces.c.seq), 0))).scalar_one()
        conn.execute(
            insert(faces),
            [
                {
                    "token": f"t{first + i}",
                    "collection_id": CID,
                    "subject_id": sid,
                    "model": "dlib_resnet_v1",
                    "embedding": v.astype("<f4").tobytes(),
                    "created_at": now,
                }
                for i, v in enumerate(vectors)
            ],
        )
        seqs = conn.execute(select(faces.c.seq).where(faces.c.seq > first).order_by(faces.c.seq))
        return [int(r[0]) for r in seqs]


def remove_faces(store: Store, seqs: list[int]) -> None:
    """Delete face rows and log their removal, as the collection service does."""
    with write_tx(store.db) as conn:
        conn.execute(
            insert(face_removals),
            [{"collection_id": CID, "face_seq": s, "at": time.time()} for s in seqs],
        )
        conn.execute(faces.delete().where(faces.c.seq.in_(seqs)))


def finds_itself(store: Store, seqs: list[int], vectors: np.ndarray) -> bool:
    """Every vector's nearest key is its own face."""
    keys, _ = store.indexes.get(store.db, CID).search(vectors, 1)
    return bool((keys[:, 0] == np.array(seqs)).all())


def test_an_index_saved_exact_reopens_as_hnsw_under_a_lower_threshold(tmp_path: Path) -> None:
    store = open_store(tmp_path, ann_threshold=1000)
    vectors = unit_vectors(200)
    seqs = add_faces(store, vectors)
    assert store.indexes.get(store.db, CID).kind == "exact"
    store.indexes.save_all()
    reopened = open_store(tmp_path, ann_threshold=100)
    index = reopened.indexes.get(reopened.db, CID)
    assert index.kind == "hnsw" and len(index) == 200
    assert finds_itself(reopened, seqs, vectors)


def test_an_index_saved_hnsw_reopens_exact_under_a_higher_threshold(tmp_path: Path) -> None:
    store = open_store(tmp_path, ann_threshold=100)
    vectors = unit_vectors(200)
    seqs = add_faces(store, vectors)
    assert store.indexes.get(store.db, CID).kind == "hnsw"
    store.indexes.save_all()
    reopened = open_store(tmp_path, ann_threshold=1000)
    index = reopened.indexes.get(reopened.db, CID)
    assert index.kind == "exact" and len(index) == 200
    assert finds_itself(reopened, seqs, vectors)


def test_reopening_under_the_same_threshold_keeps_the_kind_inside_the_hysteresis(
    tmp_path: Path,
) -> None:
    store = open_store(tmp_path, ann_threshold=100)
    seqs = add_faces(store, unit_vectors(120))
    assert store.indexes.get(store.db, CID).kind == "hnsw"
    remove_faces(store, seqs[:40])  # 80 left: below the threshold, above half of it
    assert store.indexes.get(store.db, CID).kind == "hnsw"
    store.indexes.save_all()
    reopened = open_store(tmp_path, ann_threshold=100)
    assert reopened.indexes.get(reopened.db, CID).kind == "hnsw"


def test_a_saved_index_replays_what_other_processes_did_since(tmp_path: Path) -> None:
    store = open_store(tmp_path, ann_threshold=1000)
    vectors = unit_vectors(60)
    seqs = add_faces(store, vectors[:50])
    store.indexes.get(store.db, CID)
    store.indexes.save_all()
    # Another process adds ten faces and removes five while this one is down.
    other = open_store(tmp_path, ann_threshold=1000)
    seqs += add_faces(other, vectors[50:])
    remove_faces(other, seqs[:5])
    reopened = open_store(tmp_path, ann_threshold=1000)
    index = reopened.indexes.get(reopened.db, CID)
    assert sorted(index.keys().tolist()) == seqs[5:]
    assert finds_itself(reopened, seqs[5:], vectors[5:])


def test_an_unreadable_index_file_is_rebuilt_from_the_database(tmp_path: Path) -> None:
    store = open_store(tmp_path, ann_threshold=1000)
    vectors = unit_vectors(30)
    seqs = add_faces(store, vectors)
    store.indexes.get(store.db, CID)
    store.indexes.save_all()
    (tmp_path / "index" / f"{CID}.index").write_bytes(b"not an index")
    reopened = open_store(tmp_path, ann_threshold=1000)
    assert finds_itself(reopened, seqs, vectors)


def test_rebuild_saves_and_drop_deletes_the_files(tmp_path: Path) -> None:
    store = open_store(tmp_path, ann_threshold=1000)
    add_faces(store, unit_vectors(25))
    assert store.indexes.rebuild(store.db, CID) == 25
    files = [tmp_path / "index" / f"{CID}.index", tmp_path / "index" / f"{CID}.json"]
    assert all(f.exists() for f in files)
    store.indexes.drop(CID)
    assert not any(f.exists() for f in files)
