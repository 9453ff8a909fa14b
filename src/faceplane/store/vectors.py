"""Per-collection vector indexes: exact (numpy) when small, HNSW (usearch) when large.

The database is the truth: an index file is a cache that `CollectionIndex.load` may refuse
(None), and the caller then rebuilds it from the database. Vectors are L2-normalised float32,
so cosine similarity is a dot product.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from faceplane.store.modes import FILE_MODE, open_private

ANN_THRESHOLD = 20_000
# HNSW defaults, tuned with bench/search.py at 1M × 128-d on 2 cores. expansion_add 128 over 64
# bought ~5 points of recall@10 on full-rank data for twice the build time; 1024 spends the
# 20 ms p99 budget on recall. Face-like (low intrinsic dimension) data needs far less.
CONNECTIVITY = 32
EXPANSION_ADD = 128
EXPANSION_SEARCH = 1024
# Keys at or above HOLE_BASE are placeholders (zero vectors) that overwrite the slots of removed
# vectors: usearch only marks a removal, leaving the vector in memory and in saved files.
HOLE_BASE = 1 << 62
_PARALLEL_MIN = 1024  # smaller batches (an enroll) insert on one thread: no stranding
_VERIFY_EF = 16
_ZIP_MAGIC = b"PK\x03\x04"  # np.savez output, i.e. an ExactIndex file


class VectorIndex(Protocol):
    """What every index offers; keys are int64 ids, vectors L2-normalised float32 rows."""

    dim: int

    def __len__(self) -> int: ...
    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None: ...
    def remove(self, keys: np.ndarray) -> None: ...
    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...
    def save(self, path: Path) -> None: ...


def _check(dim: int, keys: np.ndarray, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validated (keys, vectors), a re-added key within one batch keeping its last vector."""
    keys = np.asarray(keys, dtype=np.int64).reshape(-1)
    vectors = np.asarray(vectors, dtype=np.float32).reshape(-1, dim)
    if len(keys) != len(vectors):
        raise ValueError(f"{len(keys)} keys for {len(vectors)} vectors")
    if len(keys) and (keys.min() < 0 or keys.max() >= HOLE_BASE):
        raise ValueError("keys must be in [0, 2**62)")
    _, last = np.unique(keys[::-1], return_index=True)
    if len(last) < len(keys):
        keep = np.sort(len(keys) - 1 - last)
        keys, vectors = keys[keep], vectors[keep]
    return keys, np.ascontiguousarray(vectors)


def _queries(dim: int, queries: np.ndarray, k: int) -> np.ndarray:
    """Queries as an (m, dim) float32 matrix."""
    if k < 1:
        raise ValueError("k must be at least 1")
    return np.ascontiguousarray(np.asarray(queries, dtype=np.float32).reshape(-1, dim))


def _finish(keys: np.ndarray, sims: np.ndarray, valid: np.ndarray, k: int) -> tuple[Any, Any]:
    """Top-k per row, best first (ties by key, so both indexes agree), padded with -1/-inf."""
    sims = np.where(valid, sims, -np.inf).astype(np.float32)
    keys = np.where(valid, keys, np.int64(np.iinfo(np.int64).max))
    order = np.lexsort((keys, -sims), axis=1)[:, :k]
    keys, sims = np.take_along_axis(keys, order, 1), np.take_along_axis(sims, order, 1)
    keys[np.isneginf(sims)] = -1
    if keys.shape[1] < k:
        pad = k - keys.shape[1]
        keys = np.pad(keys, ((0, 0), (0, pad)), constant_values=-1)
        sims = np.pad(sims, ((0, 0), (0, pad)), constant_values=-np.inf)
    return keys, sims


def _replace(tmp: Path, path: Path) -> None:
    """Make the fully written `tmp` durable and private (0600), then atomically put it at
    `path`."""
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fchmod(fd, FILE_MODE)  # usearch writes its file with the umask's mode
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


class ExactIndex:
    """Brute force over a float32 matrix: exact answers, for collections below the threshold."""

    kind: Literal["exact"] = "exact"

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._keys = np.empty(0, dtype=np.int64)
        self._vecs = np.empty((0, dim), dtype=np.float32)
        self._n = 0
        self._row: dict[int, int] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self._n

    def _reserve(self, n: int) -> None:
        """Grow (by half, for amortised O(1) appends) or shrink the arrays to fit n rows."""
        cap = len(self._keys)
        if n <= cap and (cap <= 1024 or n > cap // 4):
            return
        new = max(1024, n + n // 2)
        keys = np.empty(new, dtype=np.int64)
        vecs = np.zeros((new, self.dim), dtype=np.float32)
        keys[: self._n], vecs[: self._n] = self._keys[: self._n], self._vecs[: self._n]
        self._keys, self._vecs = keys, vecs

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        """Add or replace vectors under their keys."""
        keys, vectors = _check(self.dim, keys, vectors)
        with self._lock:
            rows = np.fromiter((self._row.get(int(k), -1) for k in keys), np.int64, len(keys))
            old = rows >= 0
            self._vecs[rows[old]] = vectors[old]
            fresh = ~old
            count = int(fresh.sum())
            self._reserve(self._n + count)
            end = self._n + count
            self._keys[self._n : end] = keys[fresh]
            self._vecs[self._n : end] = vectors[fresh]
            self._row.update(zip(keys[fresh].tolist(), range(self._n, end), strict=True))
            self._n = end

    def remove(self, keys: np.ndarray) -> None:
        """Remove vectors by key (unknown keys ignored); the last row fills each hole."""
        with self._lock:
            for key in np.asarray(keys, dtype=np.int64).reshape(-1).tolist():
                row = self._row.pop(key, None)
                if row is None:
                    continue
                last = self._n - 1
                if row != last:
                    self._keys[row] = self._keys[last]
                    self._vecs[row] = self._vecs[last]
                    self._row[int(self._keys[row])] = row
                self._vecs[last] = 0.0  # the removed vector must not linger in memory
                self._n = last
            self._reserve(self._n)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k most similar keys and cosine similarities per query, best first."""
        q = _queries(self.dim, queries, k)
        out_k = np.full((len(q), k), -1, dtype=np.int64)
        out_s = np.full((len(q), k), -np.inf, dtype=np.float32)
        with self._lock:
            n, keys, vecs = self._n, self._keys[: self._n], self._vecs[: self._n]
            if n == 0:
                return out_k, out_s
            top = min(k, n)
            step = max(1, (1 << 25) // n)  # bound the (queries × n) similarity block to 128 MB
            for s in range(0, len(q), step):
                block = q[s : s + step]
                # BLAS spreads even one query over threads, which stall for milliseconds when the
                # other core is busy; einsum's single-threaded loop answers in microseconds.
                sims = np.einsum("ij,kj->ik", block, vecs) if len(block) <= 8 else block @ vecs.T
                if top < n:
                    part = np.argpartition(-sims, top - 1, axis=1)[:, :top]
                    sims = np.take_along_axis(sims, part, 1)
                else:
                    part = np.broadcast_to(np.arange(n), sims.shape)
                ks, ss = _finish(keys[part], sims, np.ones(sims.shape, bool), k)
                out_k[s : s + step], out_s[s : s + step] = ks, ss
        return out_k, out_s

    def items(self) -> tuple[np.ndarray, np.ndarray]:
        """Copies of all (keys, vectors)."""
        with self._lock:
            return self._keys[: self._n].copy(), self._vecs[: self._n].copy()

    def keys(self) -> np.ndarray:
        """All keys (for comparing with the database)."""
        return self.items()[0]

    def nbytes(self) -> int:
        """Bytes held by the arrays (capacity included)."""
        return int(self._keys.nbytes + self._vecs.nbytes)

    def save(self, path: Path) -> None:
        """Write keys and vectors to `path` atomically."""
        tmp = path.with_name(path.name + ".part")
        with self._lock, open_private(tmp) as fh:
            np.savez(fh, keys=self._keys[: self._n], vectors=self._vecs[: self._n])
        _replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> ExactIndex:
        """Read an index written by `save`; raises on anything malformed."""
        with np.load(path, allow_pickle=False) as data:
            keys, vecs = data["keys"], data["vectors"]
        if keys.dtype != np.int64 or vecs.dtype != np.float32 or vecs.ndim != 2:
            raise ValueError("not an exact index")
        index = cls(vecs.shape[1])
        index.add(keys, vecs)
        if len(index) != len(keys):
            raise ValueError("duplicate keys")
        return index


class HnswIndex:
    """usearch HNSW graph (inner product on unit vectors = cosine): approximate, sub-linear."""

    kind: Literal["hnsw"] = "hnsw"

    def __init__(
        self,
        dim: int,
        *,
        connectivity: int = CONNECTIVITY,
        expansion_add: int = EXPANSION_ADD,
        expansion_search: int = EXPANSION_SEARCH,
        dtype: Any = "f32",
        threads: int = 2,
        _index: Any = None,
    ) -> None:
        from usearch.index import Index  # lazily: small deployments never need it

        self.dim = dim
        self.threads = threads
        # "ip" rather than "cos": the vectors are already unit length, so skip re-normalising.
        if _index is None:
            _index = Index(
                ndim=dim,
                metric="ip",
                dtype=dtype,
                connectivity=connectivity,
                expansion_add=expansion_add,
                expansion_search=expansion_search,
            )
        self._ix: Any = _index
        self._ix.expansion_search = expansion_search  # not stored in files: set after a load
        keys = np.asarray(self._ix.keys, dtype=np.uint64).astype(np.int64)
        self._holes: list[int] = sorted(keys[keys >= HOLE_BASE].tolist())
        self._next_hole = max(self._holes, default=HOLE_BASE - 1) + 1
        self.relinked = 0  # vectors re-inserted after a parallel add stranded them
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return int(self._ix.size) - len(self._holes)

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        """Add or replace vectors under their keys (multi-threaded for large batches)."""
        keys, vectors = _check(self.dim, keys, vectors)
        if not len(keys):
            return
        with self._lock:
            old = keys[np.asarray(self._ix.contains(keys), dtype=bool)]
            if len(old):  # usearch refuses duplicate keys; the add below reuses these slots
                self._ix.remove(old)
            spare = min(len(self._holes), len(keys) - len(old))
            if spare:  # free placeholder slots (already zeroed) for the new vectors to take
                self._ix.remove(self._holes[-spare:])
                del self._holes[-spare:]
            if self.threads > 1 and len(keys) >= _PARALLEL_MIN:
                self._ix.add(keys, vectors, threads=self.threads)
                self._relink(keys, vectors)
            else:
                self._ix.add(keys, vectors, threads=1)

    def _relink(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        """Re-insert on one thread what a parallel add left unreachable (usearch issue #735)."""
        # A stranded face would never be found. Every new vector must find itself: a cheap narrow
        # search first, the real width for the few it misses, re-insertion for what still does.
        width = self._ix.expansion_search
        try:
            for ef in (_VERIFY_EF, width):
                self._ix.expansion_search = ef
                found = self._ix.search(vectors, 1, threads=self.threads)
                top = np.asarray(found.keys).reshape(len(keys), -1)[:, 0].astype(np.int64)
                miss = top != keys
                keys, vectors = keys[miss], vectors[miss]
                if not len(keys):
                    return
        finally:
            self._ix.expansion_search = width
        self._ix.remove(keys)
        self._ix.add(keys, vectors, threads=1)
        self.relinked += len(keys)

    def remove(self, keys: np.ndarray) -> None:
        """Remove vectors by key (unknown keys ignored), overwriting their slots with zeros."""
        keys = np.asarray(keys, dtype=np.int64).reshape(-1)
        keys = keys[(keys >= 0) & (keys < HOLE_BASE)]
        with self._lock:
            gone = np.unique(keys[np.asarray(self._ix.contains(keys), dtype=bool)])
            if not len(gone):
                return
            self._ix.remove(gone)
            # usearch reuses freed slots first, so these zero vectors overwrite the removed ones.
            holes = np.arange(self._next_hole, self._next_hole + len(gone), dtype=np.int64)
            self._ix.add(holes, np.zeros((len(gone), self.dim), np.float32), threads=1)
            self._holes.extend(holes.tolist())
            self._next_hole += len(gone)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Approximately the k most similar keys and cosine similarities per query, best first."""
        q = _queries(self.dim, queries, k)
        with self._lock:
            # Holes sit at similarity 0: ask for enough extra to drop them and still fill k.
            count = k + min(len(self._holes), k)
            found = self._ix.search(q, count, threads=self.threads if len(q) > 1 else 1)
        keys = np.asarray(found.keys).reshape(len(q), -1).astype(np.int64)
        with np.errstate(invalid="ignore"):  # slots past a row's count hold garbage
            sims = 1.0 - np.asarray(found.distances, dtype=np.float32).reshape(len(q), -1)
        # One query gives usearch's Matches (already trimmed), several give BatchMatches.
        counts = np.asarray(getattr(found, "counts", keys.shape[1])).reshape(-1, 1)
        valid = (np.arange(keys.shape[1]) < counts) & (keys >= 0) & (keys < HOLE_BASE)
        return _finish(keys, sims, valid, k)

    def items(self) -> tuple[np.ndarray, np.ndarray]:
        """Copies of all (keys, vectors)."""
        keys = self.keys()
        with self._lock:
            vecs = self._ix.get(keys.astype(np.uint64), dtype=np.float32)
        return keys, np.asarray(vecs, dtype=np.float32).reshape(-1, self.dim)

    def keys(self) -> np.ndarray:
        """All keys (for comparing with the database)."""
        with self._lock:
            keys = np.asarray(self._ix.keys, dtype=np.uint64).astype(np.int64)
        return keys[keys < HOLE_BASE]

    def nbytes(self) -> int:
        """Bytes usearch holds for vectors and graph."""
        return int(self._ix.memory_usage)

    def compact(self) -> None:
        """Rebuild the graph from the live vectors, dropping placeholders (slow when large)."""
        ix = self._ix
        fresh = HnswIndex(
            self.dim,
            connectivity=ix.connectivity,
            expansion_add=ix.expansion_add,
            expansion_search=ix.expansion_search,
            dtype=ix.dtype,
            threads=self.threads,
        )
        with self._lock:  # hold off mutations (and searches) while the copy is built
            keys = np.asarray(ix.keys, dtype=np.uint64).astype(np.int64)
            keys = keys[keys < HOLE_BASE]
            fresh.add(keys, ix.get(keys.astype(np.uint64), dtype=np.float32))
            self._ix, self._holes, self._next_hole = fresh._ix, [], HOLE_BASE
            self.relinked += fresh.relinked

    def save(self, path: Path) -> None:
        """Write the index to `path` atomically (usearch's own file format)."""
        tmp = path.with_name(path.name + ".part")
        with self._lock:
            self._ix.save(str(tmp))
        _replace(tmp, path)

    @classmethod
    def load(cls, path: Path, *, view: bool = False, **params: Any) -> HnswIndex:
        """Read (or, with view, memory-map read-only) a saved index; raises if malformed."""
        from usearch.index import Index

        ix = Index.restore(str(path), view=view)
        if ix is None:
            raise ValueError("not a usearch index")
        return cls(int(ix.ndim), _index=ix, **params)


class CollectionIndex:
    """A collection's index: exact below `ann_threshold` vectors, HNSW at or above it."""

    def __init__(
        self,
        dim: int,
        *,
        ann_threshold: int = ANN_THRESHOLD,
        hnsw: dict[str, Any] | None = None,
        _impl: ExactIndex | HnswIndex | None = None,
    ) -> None:
        self.dim = dim
        self.ann_threshold = ann_threshold
        self.hnsw_params = hnsw or {}
        self._impl: ExactIndex | HnswIndex = _impl or ExactIndex(dim)
        # Mutations (and conversions) are serialised here; each index locks its own searches,
        # so searching goes on against the old index while a conversion builds the new one.
        self._lock = threading.Lock()

    @property
    def kind(self) -> Literal["exact", "hnsw"]:
        """Which implementation is live."""
        return self._impl.kind

    def __len__(self) -> int:
        return len(self._impl)

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        """Add or replace; searchable on return. Crossing the threshold converts to HNSW."""
        with self._lock:
            self._impl.add(keys, vectors)
            self._conform()

    def remove(self, keys: np.ndarray) -> None:
        """Remove by key, for real; shrinking to half the threshold converts back to exact."""
        with self._lock:
            self._impl.remove(keys)
            self._conform()

    def _conform(self) -> None:
        """Make the implementation the one the threshold asks for (the caller holds the lock).

        Exact turns HNSW at the threshold; HNSW turns exact below half of it. The hysteresis
        keeps a collection that hovers around the threshold from rebuilding on every
        enroll/delete; converting back to exact drops HNSW's placeholders too.
        """
        if isinstance(self._impl, ExactIndex) and len(self._impl) >= self.ann_threshold:
            hnsw = HnswIndex(self.dim, **self.hnsw_params)
            hnsw.add(*self._impl.items())
            self._impl = hnsw
        elif isinstance(self._impl, HnswIndex) and len(self._impl) < self.ann_threshold // 2:
            exact = ExactIndex(self.dim)
            exact.add(*self._impl.items())
            self._impl = exact

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(m, k) int64 keys and float32 cosine similarities, best first, padded -1/-inf."""
        return self._impl.search(queries, k)

    def keys(self) -> np.ndarray:
        """All keys, to compare with the database when deciding whether to rebuild."""
        return self._impl.keys()

    def nbytes(self) -> int:
        """Approximate bytes held by the index."""
        return self._impl.nbytes()

    def save(self, path: Path) -> None:
        """Write the index to `path` atomically."""
        with self._lock:
            self._impl.save(path)

    @classmethod
    def load(
        cls,
        path: Path,
        *,
        dim: int | None = None,
        ann_threshold: int = ANN_THRESHOLD,
        hnsw: dict[str, Any] | None = None,
    ) -> CollectionIndex | None:
        """The saved index, or None when missing, unreadable or of another dim (→ rebuild).

        The kind follows `ann_threshold` now, not the one the file was saved under: a file
        saved exact is converted to HNSW when it holds at least the threshold, a file saved
        HNSW to exact when it holds less than half of it (the same rule as add/remove).
        """
        impl: ExactIndex | HnswIndex
        try:
            with open(path, "rb") as fh:
                magic = fh.read(4)
            if magic == _ZIP_MAGIC:
                impl = ExactIndex.load(path)
            else:
                impl = HnswIndex.load(path, **(hnsw or {}))
        except Exception:  # any failure just means "rebuild from the database", the truth
            return None
        if dim is not None and impl.dim != dim:
            return None
        index = cls(impl.dim, ann_threshold=ann_threshold, hnsw=hnsw, _impl=impl)
        with index._lock:
            index._conform()
        return index
