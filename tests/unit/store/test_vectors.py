"""Vector indexes: exact vs brute force, HNSW recall, add/remove/replace, persistence."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from faceplane.store.vectors import CollectionIndex, ExactIndex, HnswIndex

DIM = 128
# The recall tests build with half the default expansion_add, to keep this file fast: recall
# only improves with the default.
FAST_BUILD = {"expansion_add": 64}


def unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, float32."""
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def random_unit(n: int, dim: int = DIM, seed: int = 0) -> np.ndarray:
    """Uniform random unit vectors: the hardest case for HNSW."""
    return unit(np.random.default_rng(seed).standard_normal((n, dim)))


def clustered(n: int, m: int, dim: int = DIM, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Face-like data: ~8 samples per identity around random centres; queries are new samples."""
    rng = np.random.default_rng(seed)
    centres = unit(rng.standard_normal((n // 8, dim)))

    def draw(count: int) -> np.ndarray:
        noise = unit(rng.standard_normal((count, dim)))
        return unit(centres[rng.integers(len(centres), size=count)] + 0.9 * noise)

    return draw(n), draw(m)


def brute_force(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Row indices of the true top-k per query."""
    return np.argsort(-(queries @ vectors.T), axis=1, kind="stable")[:, :k]


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean fraction of the true top-k that was found."""
    return float(
        np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)])
    )


def make(kind: str, dim: int = DIM) -> ExactIndex | HnswIndex:
    """An empty index of the given kind."""
    return ExactIndex(dim) if kind == "exact" else HnswIndex(dim)


@pytest.fixture(scope="module")
def random_20k() -> tuple[HnswIndex, np.ndarray, np.ndarray]:
    """One HNSW build over 20k random unit vectors (keys = row numbers), shared by tests."""
    vectors = random_unit(20_000)
    index = HnswIndex(DIM, **FAST_BUILD)
    index.add(np.arange(len(vectors)), vectors)
    return index, vectors, random_unit(200, seed=1)


def test_exact_is_brute_force() -> None:
    vectors, queries = random_unit(3000), random_unit(40, seed=1)
    keys = np.arange(3000) * 3 + 5
    index = ExactIndex(DIM)
    index.add(keys[:1000], vectors[:1000])
    index.add(keys[1000:], vectors[1000:])  # growth across batches
    found, sims = index.search(queries, 10)
    truth = brute_force(vectors, queries, 10)
    np.testing.assert_array_equal(found, keys[truth])
    expected = np.take_along_axis(queries @ vectors.T, truth, 1)
    np.testing.assert_allclose(sims, expected, atol=1e-6)
    assert found.dtype == np.int64 and sims.dtype == np.float32
    one, one_sims = index.search(queries[3], 10)  # the single-query path (einsum, not BLAS)
    np.testing.assert_array_equal(one[0], found[3])
    np.testing.assert_allclose(one_sims[0], sims[3], atol=1e-6)


def test_hnsw_agrees_with_exact_when_small() -> None:
    vectors, queries = random_unit(2000), random_unit(30, seed=1)
    exact, hnsw = ExactIndex(DIM), HnswIndex(DIM)
    for index in (exact, hnsw):
        index.add(np.arange(2000), vectors)
    (ke, se), (kh, sh) = exact.search(queries, 10), hnsw.search(queries, 10)
    np.testing.assert_array_equal(kh, ke)
    np.testing.assert_allclose(sh, se, atol=1e-5)


def test_hnsw_recall_random(random_20k: tuple[HnswIndex, np.ndarray, np.ndarray]) -> None:
    index, vectors, queries = random_20k
    found, _ = index.search(queries, 10)
    assert recall(found, brute_force(vectors, queries, 10)) >= 0.99


def test_hnsw_recall_clustered() -> None:
    vectors, queries = clustered(10_000, 200)
    index = HnswIndex(DIM, **FAST_BUILD)
    index.add(np.arange(len(vectors)), vectors)
    found, _ = index.search(queries, 10)
    assert recall(found, brute_force(vectors, queries, 10)) >= 0.99


def test_single_query_vector(random_20k: tuple[HnswIndex, np.ndarray, np.ndarray]) -> None:
    index, vectors, _ = random_20k
    keys, sims = index.search(vectors[7], 3)
    assert keys.shape == sims.shape == (1, 3)
    assert keys[0, 0] == 7 and sims[0, 0] == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("kind", ["exact", "hnsw"])
def test_padding_when_fewer_than_k(kind: str) -> None:
    index = make(kind)
    keys, sims = index.search(random_unit(2), 4)
    assert (keys == -1).all() and np.isneginf(sims).all()
    vectors = random_unit(3)
    index.add(np.array([10, 11, 12]), vectors)
    keys, sims = index.search(vectors[:2], 5)
    assert keys.shape == (2, 5)
    assert sorted(keys[0, :3]) == [10, 11, 12] and keys[0, 0] == 10 and keys[1, 0] == 11
    assert (keys[:, 3:] == -1).all() and np.isneginf(sims[:, 3:]).all()
    assert (np.diff(sims[:, :3], axis=1) <= 0).all()  # best first


@pytest.mark.parametrize("kind", ["exact", "hnsw"])
def test_add_replace_remove(kind: str) -> None:
    index = make(kind)
    vectors = random_unit(500)
    index.add(np.arange(500), vectors)
    assert len(index) == 500

    new = random_unit(1, seed=9)
    index.add(np.array([3]), new)  # replace
    assert len(index) == 500
    keys, sims = index.search(new, 1)
    assert keys[0, 0] == 3 and sims[0, 0] == pytest.approx(1.0, abs=1e-5)
    assert index.search(vectors[3], 1)[0][0, 0] != 3

    index.add(np.array([600, 600]), np.vstack([vectors[0], new[0]]))  # last one wins
    assert index.search(new, 2)[0][0].tolist() in ([3, 600], [600, 3])

    index.remove(np.array([5, 6, 7, 999_999]))  # unknown keys are ignored
    assert len(index) == 498
    found, _ = index.search(vectors[5:8], 10)
    assert not np.isin(found, [5, 6, 7]).any()
    index.remove(np.array([5]))  # twice is fine
    assert len(index) == 498

    index.add(np.array([5]), vectors[5])  # back again
    assert index.search(vectors[5], 1)[0][0, 0] == 5
    assert len(index) == 499


@pytest.mark.parametrize("kind", ["exact", "hnsw"])
def test_rejects_bad_input(kind: str) -> None:
    index = make(kind)
    with pytest.raises(ValueError):
        index.add(np.array([1, 2]), random_unit(3))
    with pytest.raises(ValueError):
        index.add(np.array([-1]), random_unit(1))
    with pytest.raises(ValueError):
        index.add(np.array([1]), random_unit(1, dim=DIM + 1))
    with pytest.raises(ValueError):
        index.search(random_unit(1), 0)


@pytest.mark.parametrize("kind", ["exact", "hnsw"])
def test_removal_is_real(kind: str, tmp_path: Path) -> None:
    index = make(kind)
    vectors = random_unit(300)
    index.add(np.arange(300), vectors)
    index.remove(np.arange(0, 300, 3))
    path = tmp_path / "index"
    index.save(path)
    data = path.read_bytes()
    assert not any(vectors[i].tobytes() in data for i in range(0, 300, 3))
    assert vectors[1].tobytes() in data
    loaded = CollectionIndex.load(path)
    assert loaded is not None
    keys, held = loaded._impl.items()
    assert not np.isin(keys, np.arange(0, 300, 3)).any() and len(keys) == 200
    assert not any(vectors[i].tobytes() in held.tobytes() for i in range(0, 300, 3))


@pytest.mark.parametrize("kind", ["exact", "hnsw"])
def test_save_load_round_trip(kind: str, tmp_path: Path) -> None:
    index = CollectionIndex(DIM, ann_threshold=1 if kind == "hnsw" else 10_000)
    vectors, queries = random_unit(1000), random_unit(20, seed=1)
    index.add(np.arange(1000), vectors)
    index.remove(np.arange(10))
    assert index.kind == kind
    path = tmp_path / "c1.idx"
    index.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["c1.idx"]  # no temporary left behind
    loaded = CollectionIndex.load(path, dim=DIM, ann_threshold=index.ann_threshold)
    assert loaded is not None and loaded.kind == kind and len(loaded) == 990
    for got, want in zip(loaded.search(queries, 10), index.search(queries, 10), strict=True):
        np.testing.assert_array_equal(got, want)
    assert sorted(loaded.keys().tolist()) == list(range(10, 1000))
    loaded.add(np.array([5]), vectors[5])  # a loaded index stays writable
    assert loaded.search(vectors[5], 1)[0][0, 0] == 5
    if kind == "hnsw":  # a read-only memory map answers the same
        viewed = HnswIndex.load(path, view=True)
        np.testing.assert_array_equal(viewed.search(queries, 10)[0], index.search(queries, 10)[0])


@pytest.mark.parametrize("kind", ["exact", "hnsw"])
def test_load_missing_or_corrupt_is_none(kind: str, tmp_path: Path) -> None:
    assert CollectionIndex.load(tmp_path / "missing") is None
    (tmp_path / "garbage").write_bytes(b"not an index" * 100)
    assert CollectionIndex.load(tmp_path / "garbage") is None
    (tmp_path / "empty").write_bytes(b"")
    assert CollectionIndex.load(tmp_path / "empty") is None

    index = make(kind)
    index.add(np.arange(200), random_unit(200))
    good = tmp_path / "good"
    index.save(good)
    data = good.read_bytes()
    for cut in (len(data) // 2, len(data) - 100):
        (tmp_path / "cut").write_bytes(data[:cut])
        assert CollectionIndex.load(tmp_path / "cut") is None
    assert CollectionIndex.load(good, dim=DIM + 1) is None  # another model's vectors
    assert CollectionIndex.load(good, dim=DIM) is not None


def test_crossing_threshold_keeps_every_key() -> None:
    index = CollectionIndex(DIM, ann_threshold=600)
    vectors = random_unit(1000)
    for start in range(0, 1000, 200):
        index.add(np.arange(start, start + 200), vectors[start : start + 200])
        assert index.kind == ("exact" if start + 200 < 600 else "hnsw")
        top, _ = index.search(vectors[: start + 200], 1)
        np.testing.assert_array_equal(top[:, 0], np.arange(start + 200))
    index.remove(np.arange(750))  # below half the threshold: back to exact
    assert index.kind == "exact" and len(index) == 250
    top, _ = index.search(vectors[750:], 1)
    np.testing.assert_array_equal(top[:, 0], np.arange(750, 1000))


def test_concurrent_search_and_add() -> None:
    index = CollectionIndex(DIM, ann_threshold=400)
    vectors = random_unit(800)
    index.add(np.arange(100), vectors[:100])
    errors: list[BaseException] = []

    def searcher() -> None:
        try:
            for i in range(200):
                keys, _ = index.search(vectors[i % 100], 5)
                assert keys[0, 0] == i % 100
        except BaseException as exc:  # surfaced below: pytest can't see other threads' raises
            errors.append(exc)

    threads = [threading.Thread(target=searcher) for _ in range(3)]
    for t in threads:
        t.start()
    for start in range(100, 800, 50):  # crosses the threshold while searches run
        index.add(np.arange(start, start + 50), vectors[start : start + 50])
    for t in threads:
        t.join()
    assert not errors and len(index) == 800 and index.kind == "hnsw"


def test_bulk_add_leaves_no_vector_unreachable() -> None:
    # A parallel usearch add can strand nodes (usearch #735); the index re-links them.
    vectors = random_unit(5000, seed=3)
    index = HnswIndex(DIM, expansion_search=128, threads=2, **FAST_BUILD)
    index.add(np.arange(5000), vectors)
    top, _ = index.search(vectors, 1)
    np.testing.assert_array_equal(top[:, 0], np.arange(5000))


def test_compact_drops_placeholders() -> None:
    vectors = random_unit(1000)
    index = HnswIndex(DIM, **FAST_BUILD)
    index.add(np.arange(1000), vectors)
    index.remove(np.arange(0, 1000, 4))
    index.compact()
    assert len(index) == 750 and int(index._ix.size) == 750
    live = np.setdiff1d(np.arange(1000), np.arange(0, 1000, 4))
    top, _ = index.search(vectors[live], 1)
    np.testing.assert_array_equal(top[:, 0], live)
