"""Retrieval: recall of dense, sparse and hybrid search; ingestion; the chunk cache's worth.

One run, one process, one ``RetrievalService`` wired as the embedded default is
(SQLite, Qdrant local mode, the in-process ingestion queue, all-MiniLM-L6-v2, the
node-local chunk cache with its default configuration):

1. Ingestion throughput: the corpus's sections are submitted as documents and the
   clock stops when the last one is ``ready`` (queue, extraction, chunking, real
   embedding, upsert): chunks/s end to end.
2. Recall@1/5/10 and MRR of dense, sparse and hybrid search on the labelled
   queries, the vector store answering alone (cache off). Corpus and labels:
   ``bench/retrieval_corpus.py`` (the Python Language Reference from the standard
   library, one document per section, one rule-made question per section title).
3. At each scale (10k and 100k chunks: the real chunks plus distractor points,
   ``bench/retrieval_vectors.py``): query latency of the vector store alone versus a
   cache hit, p50/p95, for the step itself (store query vs cache ranking, from the
   service's own histograms) and for ``search()`` end to end; the query-embedding
   time alone is reported beside them.
4. A conversational stream (``bench/retrieval_stream.py``) through the cached path
   with prefetch between turns: hit rate, recall@5 of the cached path against the
   store answering alone, and recall against the labels.

Bars (issue 4): at 100k chunks a cache hit is >= 5x faster at p50 than Qdrant local
mode alone; recall@5 of the cached path against the store alone >= 0.95 on the
stream. Run ``python -m bench.retrieval [--quick]``; JSON goes to
``bench/results/retrieval.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import tempfile
import time
import warnings
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

from app.core.settings import Settings
from bench.machine import describe, machine
from bench.retrieval_corpus import LabelledQuery, build_sections, label_queries, load_topics
from bench.retrieval_phases import (
    COLLECTION,
    embed_times,
    ingest_corpus,
    label_recall,
    run_stream,
    store_vs_hit,
)
from bench.retrieval_stats import latency, speedup
from bench.retrieval_stream import build_stream
from bench.retrieval_vectors import CACHE_DIR, CachingEmbedder, EmbeddingCache, add_distractors
from bench.retrieval_vectors import scroll_points as scroll
from kernel.db import create_engine, session_factory
from kernel.migrations import upgrade_async
from retrieval import CacheConfig, QdrantVectorStore, RetrievalService, SentenceTransformerEmbedder

REPO = Path(__file__).resolve().parents[1]
MODES = ("dense", "sparse", "hybrid")
LATENCY_BAR = 5.0
RECALL_BAR = 0.95
INGEST_TENANT = "bench-ingest"


def tenant_ids(n: int) -> list[str]:
    return [f"bench-t{i}" for i in range(n)]


def sample(labels: list[LabelledQuery], n: int, seed: int) -> list[LabelledQuery]:
    """``n`` labels drawn without replacement, in corpus order."""
    rng = np.random.default_rng(seed)
    picked = rng.choice(len(labels), size=min(n, len(labels)), replace=False)
    return [labels[i] for i in sorted(picked)]


async def grow_to(
    service: RetrievalService,
    store: QdrantVectorStore,
    tenant: str,
    sources: list[Any],
    target: int,
    written: int,
    seed: int,
) -> tuple[int, int]:
    """Add distractors to ``tenant`` until the store holds ``target`` points.

    Returns:
        The store's point count and the distractors written so far.
    """
    client, name = store.client, store.collection_name
    total = int(client.count(name, exact=True).count)
    if total < target:
        encoder = getattr(store, "sparse_encoder", None)
        written += await add_distractors(
            client,
            name,
            tenant,
            sources,
            target - total,
            start=written,
            sparse=encoder.encode_document if encoder is not None else None,
            seed=seed,
        )
        # Written behind the service's back, as another node's ingestion would be:
        # tell the service so that its cache drops the tenant's candidate sets.
        await service.on_chunks_changed(tenant, COLLECTION, "distractor-0")
        total = int(client.count(name, exact=True).count)
    return total, written


async def run(args: argparse.Namespace) -> dict[str, object]:
    began = time.perf_counter()
    settings = Settings()
    sections = build_sections(load_topics())
    labels = label_queries(sections)
    tenants = tenant_ids(args.tenants)
    print(f"corpus: {len(sections)} sections of pydoc_data.topics, {len(labels)} labelled queries")
    inner = await asyncio.to_thread(
        SentenceTransformerEmbedder, None, "cpu", settings.embedding.batch_size
    )
    vectors = EmbeddingCache(CACHE_DIR / "embeddings-all-MiniLM-L6-v2.npz")
    embedder = CachingEmbedder(inner, vectors, lookup=False)
    out: dict[str, Any] = {"benchmark": "retrieval", "quick": args.quick, "mode": args.mode}
    out["machine"] = machine()
    print(describe(out["machine"]))
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/bench.db"
        await upgrade_async(url)
        db = create_engine(url)
        # NOTE: Qdrant local mode in memory: the same search code as a local-mode
        # folder (both keep every point in RAM and scan it), without writing 100k
        # points to SQLite first (about 80 s here).
        store = QdrantVectorStore(path=":memory:")
        service = RetrievalService(
            session_factory(db),
            embedder,
            store,
            chunk_tokens=settings.retrieval.chunk_tokens,
            chunk_overlap=settings.retrieval.chunk_overlap,
            cache=CacheConfig(),
        )
        await service.start_workers()
        try:
            await _measure(args, service, store, embedder, sections, labels, tenants, out)
        finally:
            await service.close()
            await db.dispose()
            vectors.save()
    out["environment"] = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "omp_threads": os.environ.get("OMP_NUM_THREADS"),
        "qdrant_client": version("qdrant-client"),
        "faiss": version("faiss-cpu"),
        "chunk_tokens": settings.retrieval.chunk_tokens,
        "chunk_overlap": settings.retrieval.chunk_overlap,
        "cache": dataclasses.asdict(CacheConfig()),
    }
    out["wall_s"] = round(time.perf_counter() - began, 1)
    _bars(out)
    return out


async def _measure(
    args: argparse.Namespace,
    service: RetrievalService,
    store: QdrantVectorStore,
    embedder: CachingEmbedder,
    sections: list[Any],
    labels: list[LabelledQuery],
    tenants: list[str],
    out: dict[str, Any],
) -> None:
    # 1. Ingestion throughput, real embedding (nothing looked up).
    subset = sections[: args.ingest_sections] if args.ingest_sections else sections
    ingestion = await ingest_corpus(service, INGEST_TENANT, subset)
    print(
        f"ingestion: {ingestion['documents']} documents, {ingestion['chunks']} chunks in "
        f"{ingestion['seconds']}s through the queue = {ingestion['chunks_per_s']} chunks/s"
    )
    out["ingestion"] = ingestion
    # The tenants' corpora reuse the vectors just computed (or cached on disk).
    embedder.lookup = True
    for tenant in tenants:
        loaded = await ingest_corpus(service, tenant, sections)
        if loaded["not_ready"]:
            raise RuntimeError(f"documents failed to ingest: {loaded['not_ready'][:5]}")
    corpus_chunks = int(loaded["chunks"])
    print(f"corpus: {corpus_chunks} chunks per tenant, {len(tenants)} tenants")
    out["corpus"] = {
        "source": "pydoc_data.topics (Python Language Reference)",
        "sections": len(sections),
        "labelled_queries": len(labels),
        "chunks": corpus_chunks,
    }

    # 2. Recall against the labels, store alone.
    out["recall"] = {}
    asked = sample(labels, args.recall_queries, args.seed) if args.recall_queries else labels
    for mode in MODES:
        phase = time.perf_counter()
        figures = await label_recall(service, tenants[0], asked, mode)
        figures["seconds"] = round(time.perf_counter() - phase, 1)
        out["recall"][mode] = figures
        print(
            f"recall {mode:6s}: @1 {figures['recall@1']:.3f}  @5 {figures['recall@5']:.3f}  "
            f"@10 {figures['recall@10']:.3f}  MRR {figures['mrr']:.3f}  ({figures['queries']} q)"
        )

    # 3 and 4, per scale (0: the real chunks alone).
    stream = build_stream(labels, args.conversations, args.turns, len(tenants), args.seed)
    out["stream"] = {
        "conversations": args.conversations,
        "turns_each": args.turns,
        "tenants": len(tenants),
    }
    out["scales"] = {}
    sources = await scroll(store.client, store.collection_name, tenants[0])
    written = 0
    for n, queries, streamed in args.scales:
        phase = time.perf_counter()
        total, written = await grow_to(service, store, tenants[0], sources, n, written, args.seed)
        scale: dict[str, Any] = {"points": total, "grow_s": round(time.perf_counter() - phase, 1)}
        if queries:
            scale.update(await _latency(service, embedder, labels, queries, total, args))
        if streamed:
            service.clear_cache()  # start the stream with an empty cache
            result = await run_stream(service, tenants, stream, args.mode)
            scale["stream"] = result
            cached, alone = result["labels_cached"], result["labels_store_alone"]
            print(
                f"   stream at {total} chunks: {result['turns']} turns, hit rate "
                f"{result['hit_rate']:.3f}, recall@5 vs store alone "
                f"{result['recall@5_vs_store']:.3f} (min {result['min_overlap@5']:.2f}); "
                f"label recall@5 cached {cached['recall@5']:.3f} vs store {alone['recall@5']:.3f}"
            )
        scale["seconds"] = round(time.perf_counter() - phase, 1)
        out["scales"][str(n)] = scale


async def _latency(
    service: RetrievalService,
    embedder: CachingEmbedder,
    labels: list[LabelledQuery],
    queries: int,
    total: int,
    args: argparse.Namespace,
) -> dict[str, Any]:
    picked = sample(labels, queries, args.seed)
    emb = latency(embed_times(embedder, [q.query for q in picked]))
    timings = await store_vs_hit(service, "bench-t0", picked, args.mode)
    step = speedup(timings["store_step"], timings["hit_step"], "p50_ms")
    e2e = speedup(timings["store_e2e"], timings["hit_e2e"], "p50_ms")
    print(
        f"\n{total} chunks ({args.mode}): store alone p50 "
        f"{timings['store_step']['p50_ms']} ms p95 {timings['store_step']['p95_ms']} ms; "
        f"cache hit p50 {timings['hit_step'].get('p50_ms')} ms p95 "
        f"{timings['hit_step'].get('p95_ms')} ms => {step}x "
        f"({timings['second_ask_hits']}/{timings['queries']} repeats hit)"
    )
    print(
        f"   search() end to end: store {timings['store_e2e']['p50_ms']} ms vs hit "
        f"{timings['hit_e2e'].get('p50_ms')} ms => {e2e}x; "
        f"query embedding alone p50 {emb.get('p50_ms')} ms"
    )
    return {
        "query_embedding": emb,
        **timings,
        "speedup_step_p50": step,
        "speedup_e2e_p50": e2e,
    }


def _bars(out: dict[str, Any]) -> None:
    scales = out.get("scales", {})
    top = scales.get("100000")
    bars: dict[str, Any] = {}
    if top is not None:
        ratio = top["speedup_step_p50"]
        bars["cache_hit_5x_at_100k"] = {"ratio": ratio, "pass": ratio >= LATENCY_BAR}
    streamed = [(s["points"], s["stream"]) for s in scales.values() if "stream" in s]
    if streamed:
        n, stream = max(streamed, key=lambda item: int(item[0]))  # the largest scale
        value = stream["recall@5_vs_store"]
        bars["stream_recall@5_vs_store"] = {
            "points": int(n),
            "value": value,
            "pass": value >= RECALL_BAR,
        }
    out["bars"] = bars
    print()
    for name, bar in bars.items():
        shown = {k: v for k, v in bar.items() if k != "pass"}
        print(f"{'PASS' if bar['pass'] else 'FAIL'}  {name}: {shown}")
    print(f"wall time {out['wall_s']} s")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer queries and turns (<3 min)")
    parser.add_argument("--mode", default="hybrid", choices=MODES, help="latency/stream mode")
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args(argv)
    # (points, latency queries, run the stream?) per scale, in growing order.
    if args.quick:
        args.ingest_sections, args.tenants, args.recall_queries = 24, 2, 60
        args.scales = [(0, 0, True), (10_000, 4, False), (100_000, 3, False)]
        args.conversations, args.turns = 6, 5
    else:
        args.ingest_sections, args.tenants, args.recall_queries = 0, 3, 0
        args.scales = [(0, 0, True), (10_000, 60, True), (100_000, 30, True)]
        args.conversations, args.turns = 16, 8
    return args


def main() -> None:
    args = parse_args()
    # Local mode says so above 20k points; using it at 100k is the point here.
    warnings.filterwarnings("ignore", message="Local mode is not recommended")
    summary = asyncio.run(run(args))
    name = "retrieval.json" if args.mode == "hybrid" else f"retrieval-{args.mode}.json"
    out = REPO / "bench" / "results" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2, default=str))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
