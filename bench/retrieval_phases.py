"""The measured phases of the retrieval benchmark, each against a live ``RetrievalService``.

Step timings (the vector store's query alone, a cache hit's ranking alone) are read
from the service's own Prometheus histograms, one observation per search, so they
are what the product measures about itself; end-to-end timings wrap ``search()``
(query embedding included).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prometheus_client import REGISTRY

from bench.retrieval_stats import latency, overlap_at_k, recall_mrr

if TYPE_CHECKING:
    from collections.abc import Sequence

    from bench.retrieval_corpus import LabelledQuery, Section
    from bench.retrieval_stream import Turn
    from retrieval import Embedder, RetrievalService

COLLECTION = "default"
_STORE_SECONDS = "ragserve:vector_store_query_duration_seconds_sum"
_HIT_SECONDS = "ragserve:chunk_cache_hit_duration_seconds_sum"


def _sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


@dataclass(slots=True)
class Timed:
    """One search: its hits' ids and document names, and what it cost."""

    ids: list[str]
    names: list[str]
    texts: list[str]
    e2e_s: float
    hit: bool
    store_s: float
    cache_s: float


async def timed_search(
    service: RetrievalService, tenant: str, query: str, k: int, mode: str, *, use_cache: bool
) -> Timed:
    """One ``search()``, with its end-to-end time and the step times it recorded."""
    hits0 = service.cache_stats().hits
    store0 = _sample(_STORE_SECONDS, {"mode": mode})
    cache0 = _sample(_HIT_SECONDS)
    start = time.perf_counter()
    found = await service.search(tenant, query, k, mode=mode, use_cache=use_cache)
    e2e = time.perf_counter() - start
    return Timed(
        ids=[h.chunk_id for h in found],
        names=[h.document_name for h in found],
        texts=[h.text for h in found],
        e2e_s=e2e,
        hit=service.cache_stats().hits > hits0,
        store_s=_sample(_STORE_SECONDS, {"mode": mode}) - store0,
        cache_s=_sample(_HIT_SECONDS) - cache0,
    )


async def ingest_corpus(
    service: RetrievalService, tenant: str, sections: Sequence[Section], timeout_s: float = 3600
) -> dict[str, Any]:
    """Submit every section as a document and wait until all are indexed.

    Returns:
        Documents, chunks, seconds from the first submit to the last ready, chunks/s,
        and how many documents failed.
    """
    start = time.perf_counter()
    ids = []
    for section in sections:
        result = await service.submit(
            tenant, section.name, section.text.encode("utf-8"), "text/plain", COLLECTION
        )
        ids.append(result.document.id)
    submitted = time.perf_counter() - start
    docs = await service.wait_for(tenant, ids, timeout_s)
    elapsed = time.perf_counter() - start
    chunks = sum(d.chunk_count for d in docs)
    failed = [d.name for d in docs if d.status.value != "ready"]
    return {
        "documents": len(ids),
        "chunks": chunks,
        "submit_s": round(submitted, 3),
        "seconds": round(elapsed, 3),
        "chunks_per_s": round(chunks / elapsed, 2) if elapsed else 0.0,
        "not_ready": failed,
    }


async def label_recall(
    service: RetrievalService, tenant: str, labels: Sequence[LabelledQuery], mode: str
) -> dict[str, float]:
    """Recall@1/5/10 and MRR of the vector store answering alone (cache off)."""
    results = []
    for label in labels:
        found = await service.search(tenant, label.query, 10, mode=mode, use_cache=False)
        results.append(([h.document_name for h in found], label.relevant))
    return recall_mrr(results)


def embed_times(embedder: Embedder, queries: Sequence[str]) -> list[float]:
    """Seconds to embed each query alone (the model call, no batching window)."""
    out = []
    for query in queries:
        start = time.perf_counter()
        embedder.embed_query(query)
        out.append(time.perf_counter() - start)
    return out


async def store_vs_hit(
    service: RetrievalService,
    tenant: str,
    labels: Sequence[LabelledQuery],
    mode: str,
) -> dict[str, Any]:
    """Latency of the store answering alone vs a cache hit, on the same questions.

    For each label: its question with the cache off (the store alone), then with the
    cache on twice: the first fills the cache (a miss), the second asks the same
    question again (a hit when the cache answers it, as it should).

    Returns:
        p50/p95 of the step (store query vs cache ranking) and of ``search()`` end to
        end, for the store alone and for hits, plus how many second asks hit.
    """
    store_step, store_e2e, hit_step, hit_e2e = [], [], [], []
    hits = 0
    for label in labels:
        alone = await timed_search(service, tenant, label.query, 5, mode, use_cache=False)
        store_step.append(alone.store_s)
        store_e2e.append(alone.e2e_s)
        await timed_search(service, tenant, label.query, 5, mode, use_cache=True)
        again = await timed_search(service, tenant, label.query, 5, mode, use_cache=True)
        if again.hit:
            hits += 1
            hit_step.append(again.cache_s)
            hit_e2e.append(again.e2e_s)
    return {
        "queries": len(labels),
        "second_ask_hits": hits,
        "store_step": latency(store_step),
        "hit_step": latency(hit_step),
        "store_e2e": latency(store_e2e),
        "hit_e2e": latency(hit_e2e),
    }


@dataclass(slots=True)
class StreamTally:
    """Per-turn outcomes of the conversational stream."""

    turns: int = 0
    hits: int = 0
    overlap: list[float] = field(default_factory=list)
    cached: list[tuple[list[str], frozenset[str]]] = field(default_factory=list)
    alone: list[tuple[list[str], frozenset[str]]] = field(default_factory=list)
    hit_e2e: list[float] = field(default_factory=list)
    miss_e2e: list[float] = field(default_factory=list)
    by_kind: dict[str, list[int]] = field(default_factory=dict)


async def run_stream(
    service: RetrievalService,
    tenants: Sequence[str],
    stream: Sequence[Turn],
    mode: str,
    *,
    prefetch: bool = True,
) -> dict[str, Any]:
    """Run the stream through the cached path, checking every turn against the store alone.

    Each turn: the store alone answers (cache off, the reference), then the cached
    path answers (timed); then, as after a real turn, a prefetch for the likely next
    question is queued (the question and the best chunk, standing in for the
    answer), and it runs before the next turn, as it would while the user reads.

    Returns:
        Hit rate, recall@5 of the cached path against the store alone (mean overlap
        of the top-5 ids), recall against the labels for both paths, latencies.
    """
    tally = StreamTally()
    for turn in stream:
        tenant = tenants[turn.tenant]
        ref = await timed_search(service, tenant, turn.query, 5, mode, use_cache=False)
        got = await timed_search(service, tenant, turn.query, 5, mode, use_cache=True)
        tally.turns += 1
        tally.hits += got.hit
        tally.overlap.append(overlap_at_k(got.ids, ref.ids, 5))
        tally.cached.append((got.names, turn.relevant))
        tally.alone.append((ref.names, turn.relevant))
        (tally.hit_e2e if got.hit else tally.miss_e2e).append(got.e2e_s)
        counts = tally.by_kind.setdefault(turn.kind, [0, 0])
        counts[0] += 1
        counts[1] += got.hit
        if prefetch:
            answer = got.texts[0] if got.texts else ""
            await service.prefetch(tenant, COLLECTION, f"{turn.query}\n{answer}", k=5, mode=mode)
            # The user reads the answer meanwhile: the prefetch finishes before the next turn.
            await service.settle_prefetches()
    return {
        "turns": tally.turns,
        "hit_rate": round(tally.hits / tally.turns, 4) if tally.turns else 0.0,
        "recall@5_vs_store": round(sum(tally.overlap) / len(tally.overlap), 4)
        if tally.overlap
        else 0.0,
        "min_overlap@5": round(min(tally.overlap), 4) if tally.overlap else 0.0,
        "labels_cached": recall_mrr(tally.cached, (1, 5)),
        "labels_store_alone": recall_mrr(tally.alone, (1, 5)),
        "hit_e2e": latency(tally.hit_e2e),
        "miss_e2e": latency(tally.miss_e2e),
        "hits_by_kind": {k: {"turns": v[0], "hits": v[1]} for k, v in tally.by_kind.items()},
    }
