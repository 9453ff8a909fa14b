"""Vector search: exact vs HNSW — build time, memory, query latency and HNSW recall.

    python bench/search.py [--sizes 10000,100000,1000000] [--queries 1000] [--data face,hard]
        [--connectivity 32] [--expansion-add 64] [--ef 512[,1024,...]] [--threads 2]

Per size and data set, one Markdown table: the exact index (numpy) and the HNSW index (usearch)
built over the same vectors, each queried one query at a time (k=10) through the API the server
uses; recall is HNSW's top-1 / top-10 against the exact answer. Several --ef values sweep
expansion_search over one HNSW build. The synthetic sets are seeded clustered mixtures, ~8
samples per identity, queries being fresh samples of enrolled identities:
  face  identities and their variation on a curved 16-d manifold in 128-d (same identity
        cos ≈ 0.69, others ≈ 0.08 ± 0.22), as face embeddings have a low intrinsic dimension;
  hard  full rank (same identity cos ≈ 0.55, others 0 ± 0.14): no manifold for the graph to
        exploit, the worst case, and a bound on what real data can cost.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import print_table
from faceplane.store.vectors import (
    CONNECTIVITY,
    EXPANSION_ADD,
    EXPANSION_SEARCH,
    ExactIndex,
    HnswIndex,
)

HEADER = ["index", "build s", "index MB", "RSS Δ MB", "p50 ms", "p99 ms", "recall@1", "recall@10"]


def real_embeddings() -> np.ndarray | None:
    """Unit-length embeddings of the FACEPLANE_TESTDATA photos; None until someone adds them."""
    # Hook: embed the test photos (bench/common.testdata_dir()) with the default engine and
    # return an (n, dim) float32 array. Returning None skips the "real embeddings" table.
    return None


def unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, float32."""
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def clustered(n: int, dim: int, seed: int, data: str) -> np.ndarray:
    """n seeded face-like unit vectors: identities of ~8 samples each (see the module doc)."""
    rng = np.random.default_rng(seed)
    ids = max(1, n // 8)
    scale: np.ndarray
    if data == "face":
        # Identities and their variation on a 16-d curved manifold (a fixed random tanh layer):
        # published intrinsic dimensions of face embeddings are ~10-16 (Gong et al., 2019).
        lift = rng.standard_normal((16, 256)) * (1.5 / 4)
        bias = rng.standard_normal(256) * 0.5
        mix = rng.standard_normal((256, dim)) / 16
        centres = rng.standard_normal((ids, 16))
        spread, scale = 0.6, np.ones(16)
    else:  # "hard": full rank, a decaying spectrum, the worst case for a graph index
        scale = (1.0 + np.arange(dim)) ** -0.375
        centres = unit(rng.standard_normal((ids, dim)) * scale)
        spread = 0.9
    out = np.empty((n, dim), np.float32)
    for s in range(0, n, 100_000):  # in chunks, to keep temporaries small at 1M
        e = min(n, s + 100_000)
        noise = rng.standard_normal((e - s, len(scale))) * scale
        picked = centres[rng.integers(ids, size=e - s)]
        if data == "face":
            out[s:e] = unit(np.tanh((picked + spread * noise) @ lift + bias) @ mix)
        else:
            out[s:e] = unit(picked + spread * unit(noise))
    return out


def rss_mb() -> float:
    """Current resident set size in MB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def latencies(index: ExactIndex | HnswIndex, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Top-10 keys per query and each single query's latency in ms."""
    keys = np.empty((len(queries), 10), np.int64)
    ms = np.empty(len(queries))
    for i, q in enumerate(queries):
        t = time.perf_counter()
        keys[i] = index.search(q, 10)[0][0]
        ms[i] = (time.perf_counter() - t) * 1e3
    return keys, ms


def recall(found: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(recall@1, recall@10) of found against the exact top-10."""
    at1 = float(np.mean(found[:, 0] == truth[:, 0]))
    at10 = np.mean([len(np.intersect1d(f, t)) / 10 for f, t in zip(found, truth, strict=True)])
    return at1, float(at10)


def row(name: str, build: float, nbytes: int, rss: float, ms: np.ndarray) -> list[str]:
    """One table row."""
    p50, p99 = np.percentile(ms, [50, 99])
    return [name, f"{build:.1f}", f"{nbytes / 2**20:.0f}", f"{rss:.0f}", f"{p50:.2f}", f"{p99:.2f}"]


def bench(title: str, vectors: np.ndarray, queries: np.ndarray, args: argparse.Namespace) -> None:
    """Build both indexes over `vectors`, query, print one table."""
    keys = np.arange(len(vectors), dtype=np.int64)
    gc.collect()
    rss0, t = rss_mb(), time.perf_counter()
    exact = ExactIndex(vectors.shape[1])
    exact.add(keys, vectors)
    build, rss = time.perf_counter() - t, rss_mb() - rss0
    found, ms = latencies(exact, queries)
    # The reference answer, batched (it can order float32 near-ties unlike single queries).
    truth = exact.search(queries, 10)[0]
    rows = [[*row("exact", build, exact.nbytes(), rss, ms), "1", "1"]]
    del exact, found
    gc.collect()

    rss0, t = rss_mb(), time.perf_counter()
    hnsw = HnswIndex(
        vectors.shape[1],
        connectivity=args.connectivity,
        expansion_add=args.expansion_add,
        threads=args.threads,
    )
    hnsw.add(keys, vectors)
    build, rss = time.perf_counter() - t, rss_mb() - rss0
    for ef in args.ef:
        hnsw._ix.expansion_search = ef  # sweep one build rather than rebuild per value
        found, ms = latencies(hnsw, queries)
        at1, at10 = recall(found, truth)
        name = f"hnsw M={args.connectivity} efa={args.expansion_add} ef={ef}"
        rows.append([*row(name, build, hnsw.nbytes(), rss, ms), f"{at1:.4f}", f"{at10:.4f}"])
    print(f"\n### {title}\n")
    print_table(HEADER, rows)
    print(f"\nHNSW build includes the reachability check; {hnsw.relinked} vectors re-linked.")
    sys.stdout.flush()


def main() -> None:
    """Parse arguments and run every size and data set."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--data", default="face,hard", help="synthetic sets: face and/or hard")
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--connectivity", type=int, default=CONNECTIVITY)
    ap.add_argument("--expansion-add", type=int, default=EXPANSION_ADD)
    ap.add_argument("--ef", default=str(EXPANSION_SEARCH), help="expansion_search value(s)")
    ap.add_argument("--threads", type=int, default=2, help="HNSW build threads")
    args = ap.parse_args()
    args.ef = [int(x) for x in args.ef.split(",")]
    print(f"dim={args.dim}; {args.queries} single queries (k=10) per index; HNSW built on ")
    print(f"{args.threads} threads; latency includes the Python wrapper; RSS Δ: process growth.")
    for n in (int(x) for x in args.sizes.split(",")):
        for data in args.data.split(","):
            vectors = clustered(n + args.queries, args.dim, args.seed, data)
            bench(f"synthetic {data}, n={n:,}", vectors[:n], vectors[n:], args)
            del vectors
    real = real_embeddings()
    if real is None:
        print("\n(real embeddings: none yet — fill in real_embeddings() to add that table)")
    elif len(real) > args.queries:
        held = np.zeros(len(real), bool)
        held[np.random.default_rng(args.seed).choice(len(real), args.queries, replace=False)] = 1
        bench(f"real embeddings, n={int((~held).sum()):,}", real[~held], real[held], args)


if __name__ == "__main__":
    main()
