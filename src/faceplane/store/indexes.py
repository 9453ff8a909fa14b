"""Per-process vector indexes of collections, kept in step with the database (the truth).

Faces carry an ever-growing `seq`; removals are logged in `face_removals`. Before each search
an index replays what it has not seen yet, so a face enrolled by any process is searchable as
soon as its enroll returns. Indexes are saved to disk with the sequence numbers they reflect,
so a restart only replays the tail; a missing or unreadable file is rebuilt from the database.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import Engine, and_, select

from faceplane.store.db import face_removals, faces
from faceplane.store.modes import make_private_dirs, write_private
from faceplane.store.vectors import CollectionIndex

# A new collection's index starts at this length; its dimension follows its vectors (the
# collection's embedding space: 128 for dlib_resnet_v1, 320 for the fused space).
DIM = 128
SAVE_EVERY = 5_000  # changes replayed since the last save before the file is rewritten


@dataclass
class _Entry:
    index: CollectionIndex
    face_seq: int
    removal_seq: int
    unsaved: int
    lock: threading.Lock


class IndexRegistry:
    """The indexes of one process, by collection id."""

    def __init__(self, folder: Path, ann_threshold: int) -> None:
        self.folder = folder
        self.ann_threshold = ann_threshold
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def _paths(self, collection_id: str) -> tuple[Path, Path]:
        return self.folder / f"{collection_id}.index", self.folder / f"{collection_id}.json"

    def _open(self, collection_id: str) -> _Entry:
        path, meta_path = self._paths(collection_id)
        # The current threshold decides exact vs HNSW, not the one the file was saved under.
        index = (
            CollectionIndex.load(path, ann_threshold=self.ann_threshold)
            if meta_path.exists()
            else None
        )
        face_seq = removal_seq = 0
        if index is not None:
            try:
                meta = json.loads(meta_path.read_text())
                face_seq, removal_seq = int(meta["face_seq"]), int(meta["removal_seq"])
            except (OSError, ValueError, KeyError):
                index = None
        if index is None:
            index = CollectionIndex(DIM, ann_threshold=self.ann_threshold)
            face_seq = removal_seq = 0
        return _Entry(index, face_seq, removal_seq, 0, threading.Lock())

    def get(self, db: Engine, collection_id: str) -> CollectionIndex:
        """The collection's index, caught up with the database."""
        with self._lock:
            entry = self._entries.get(collection_id)
            if entry is None:
                entry = self._entries[collection_id] = self._open(collection_id)
        with entry.lock:
            self._catch_up(db, collection_id, entry)
        return entry.index

    def _catch_up(self, db: Engine, collection_id: str, entry: _Entry) -> None:
        with db.connect() as conn:
            rows = conn.execute(
                select(faces.c.seq, faces.c.embedding)
                .where(and_(faces.c.collection_id == collection_id, faces.c.seq > entry.face_seq))
                .order_by(faces.c.seq)
            ).all()
            gone = conn.execute(
                select(face_removals.c.seq, face_removals.c.face_seq)
                .where(
                    and_(
                        face_removals.c.collection_id == collection_id,
                        face_removals.c.seq > entry.removal_seq,
                    )
                )
                .order_by(face_removals.c.seq)
            ).all()
        if rows:
            keys = np.array([r[0] for r in rows], dtype=np.int64)
            vecs = np.stack([np.frombuffer(r[1], dtype="<f4") for r in rows])
            if vecs.shape[1] != entry.index.dim and len(entry.index) == 0:
                # An empty index takes the length of the collection's first vectors.
                entry.index = CollectionIndex(vecs.shape[1], ann_threshold=self.ann_threshold)
            entry.index.add(keys, vecs)
            entry.face_seq = int(keys[-1])
        if gone:
            entry.index.remove(np.array([r[1] for r in gone], dtype=np.int64))
            entry.removal_seq = int(gone[-1][0])
        entry.unsaved += len(rows) + len(gone)
        if entry.unsaved >= SAVE_EVERY:
            self._save(collection_id, entry)

    def _save(self, collection_id: str, entry: _Entry) -> None:
        make_private_dirs(self.folder, self.folder)
        path, meta_path = self._paths(collection_id)
        entry.index.save(path)
        tmp = meta_path.with_suffix(".json.part")
        seqs = {"face_seq": entry.face_seq, "removal_seq": entry.removal_seq}
        write_private(tmp, json.dumps(seqs).encode())
        os.replace(tmp, meta_path)
        entry.unsaved = 0

    def rebuild(self, db: Engine, collection_id: str) -> int:
        """Throw the index away, rebuild it from the database, save it; return its size."""
        self.drop(collection_id)
        entry = _Entry(
            CollectionIndex(DIM, ann_threshold=self.ann_threshold), 0, 0, 0, threading.Lock()
        )
        with entry.lock:
            self._catch_up(db, collection_id, entry)
            self._save(collection_id, entry)
        with self._lock:
            self._entries[collection_id] = entry
        return len(entry.index)

    def save_all(self) -> None:
        """Save every index with unsaved changes (at shutdown)."""
        with self._lock:
            entries = list(self._entries.items())
        for cid, entry in entries:
            with entry.lock:
                if entry.unsaved:
                    self._save(cid, entry)

    def drop(self, collection_id: str) -> None:
        """Forget a collection's index and delete its files (the collection is gone)."""
        with self._lock:
            self._entries.pop(collection_id, None)
        for path in self._paths(collection_id):
            path.unlink(missing_ok=True)
