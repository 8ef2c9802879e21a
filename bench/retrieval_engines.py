"""The embedded vector engines side by side: Qdrant Edge against qdrant-client local mode.

Edge runs twice: in a child process (the default engine) and in this process, so the
child's round trip shows.

Random 384-d unit vectors with eight random words each (so the sparse leg has work),
spread over ten tenants; every query is tenant-filtered, as every served query is.
Both stores are driven through the ``VectorStore`` interface (so the thread hop is
counted). Reports p50/p95 latency of dense and hybrid top-10 queries and dense
recall@10 against an exact numpy scan of the tenant's vectors; hybrid results are
compared with local mode's (both exact, both RRF with k=2) where local mode ran.

Run ``python -m bench.retrieval_engines`` (10k and 100k; ``--million`` adds 1M for
Edge alone: local mode takes seconds a query there). JSON goes to bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.machine import describe, machine
from retrieval.types import SearchMode
from retrieval.vector_store import (
    ChunkPoint,
    EdgeVectorStore,
    ProcessEdgeVectorStore,
    QdrantVectorStore,
    VectorStore,
)

REPO = Path(__file__).resolve().parents[1]
DIM = 384
TENANTS = 10
K = 10
WORDS = [f"w{i}" for i in range(3000)]


def corpus(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, list[ChunkPoint]]:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    tenants = np.arange(n) % TENANTS
    words = rng.integers(0, len(WORDS), size=(n, 8))
    points = [
        ChunkPoint(
            f"t{tenants[i]}",
            "default",
            f"d{i // 100}",
            "bench.txt",
            i % 100,
            " ".join(WORDS[w] for w in words[i]),
            vectors[i],
        )
        for i in range(n)
    ]
    return vectors, tenants, points


async def measure(
    store: VectorStore, points: list[ChunkPoint], queries: list[tuple[np.ndarray, str]]
) -> dict[str, Any]:
    started = time.perf_counter()
    await store.ensure_ready(DIM)
    for i in range(0, len(points), 10_000):
        await store.upsert(points[i : i + 10_000])
    out: dict[str, Any] = {"build_s": round(time.perf_counter() - started, 1)}
    for mode in (SearchMode.DENSE, SearchMode.HYBRID):
        latencies, ids = [], []
        for vector, text in queries:
            began = time.perf_counter()
            found = await store.search("t0", vector, K, text=text, mode=mode)
            latencies.append(time.perf_counter() - began)
            ids.append([c.hit.chunk_id for c in found])
        out[str(mode)] = {
            "p50_ms": round(float(np.percentile(latencies, 50)) * 1000, 2),
            "p95_ms": round(float(np.percentile(latencies, 95)) * 1000, 2),
            "ids": ids,
        }
    await store.close()
    return out


def recall(found: list[list[str]], truth: list[list[str]]) -> float:
    hits = sum(len(set(f) & set(t)) for f, t in zip(found, truth, strict=True))
    return round(hits / max(1, sum(len(t) for t in truth)), 4)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    scales = [10_000, 100_000] + ([1_000_000] if args.million else [])
    out: dict[str, Any] = {"benchmark": "retrieval_engines", "machine": machine(), "k": K}
    out["scales"] = {}
    for n in scales:
        vectors, tenants, points = corpus(n, args.seed)
        rng = np.random.default_rng(args.seed + 1)
        queries = []
        for _ in range(args.queries):
            vector = rng.normal(size=DIM).astype(np.float32)
            words = " ".join(WORDS[w] for w in rng.integers(0, len(WORDS), size=3))
            queries.append((vector / np.linalg.norm(vector), words))
        mine = np.flatnonzero(tenants == 0)
        truth = [
            [points[mine[j]].id for j in np.argsort(-(vectors[mine] @ v))[:K]] for v, _ in queries
        ]
        scale: dict[str, Any] = {}
        with tempfile.TemporaryDirectory() as tmp:
            engines: dict[str, VectorStore] = {
                # The default: the shard in a child process (a round trip per call).
                "edge": ProcessEdgeVectorStore(Path(tmp) / "edge"),
                "edge-inprocess": EdgeVectorStore(Path(tmp) / "edge-inprocess"),
            }
            if n <= args.local_max:
                engines["local"] = QdrantVectorStore(path=":memory:")
            for name, store in engines.items():
                result = await measure(store, points, queries)
                result["dense"]["recall@10"] = recall(result["dense"]["ids"], truth)
                scale[name] = result
                print(
                    f"{n:>8} {name:<14} build {result['build_s']:>6.1f}s  dense p50/p95 "
                    f"{result['dense']['p50_ms']}/{result['dense']['p95_ms']} ms recall@10 "
                    f"{result['dense']['recall@10']}  hybrid p50/p95 "
                    f"{result['hybrid']['p50_ms']}/{result['hybrid']['p95_ms']} ms",
                    flush=True,
                )
        if "local" in scale:
            agree = recall(scale["edge"]["hybrid"]["ids"], scale["local"]["hybrid"]["ids"])
            scale["edge"]["hybrid"]["overlap@10_with_local"] = agree
            print(f"{n:>8} hybrid top-10 overlap edge vs local: {agree}")
        for result in scale.values():
            for mode in ("dense", "hybrid"):
                result[mode].pop("ids")
        out["scales"][str(n)] = scale
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=30, help="queries per mode and scale")
    parser.add_argument("--million", action="store_true", help="add 1M points (Edge only)")
    parser.add_argument(
        "--local-max", type=int, default=100_000, help="largest scale local mode runs at"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(describe())
    began = time.perf_counter()
    out = asyncio.run(run(args))
    out["seconds"] = round(time.perf_counter() - began, 1)
    path = REPO / "bench" / "results" / f"retrieval_engines-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print(f"wrote {path} in {out['seconds']} s")


if __name__ == "__main__":
    main()
