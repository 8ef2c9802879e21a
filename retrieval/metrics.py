"""Prometheus metrics of retrieval: the chunk cache, prefetch and query batching.

Registered on the process's default registry, so ``/metrics`` shows them with the
app's and the engine's.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CACHE_LOOKUPS = Counter(
    "ragserve:chunk_cache_lookups_total",
    "Searches that consulted the node-local chunk cache, by result (hit or miss).",
    ["result"],
)
CACHE_EVICTIONS = Counter(
    "ragserve:chunk_cache_evictions_total",
    "Entries (chunks and recent queries) evicted to stay within the byte budget.",
    ["kind"],
)
CACHE_INVALIDATIONS = Counter(
    "ragserve:chunk_cache_invalidations_total",
    "Document changes (ingest, replace, delete) that dropped cached entries.",
)
CACHE_BYTES = Gauge("ragserve:chunk_cache_bytes", "Approximate bytes held by the chunk cache.")
CACHE_ENTRIES = Gauge(
    "ragserve:chunk_cache_entries", "Entries held by the chunk cache, by kind.", ["kind"]
)
CACHE_LATENCY_SAVED = Counter(
    "ragserve:chunk_cache_latency_saved_seconds_total",
    "Vector-store latency avoided by cache hits: the recent mean store latency, less the "
    "time the hit took, summed over hits.",
)
STORE_LATENCY = Histogram(
    "ragserve:vector_store_query_duration_seconds",
    "Latency of vector-store queries made by searches and prefetches.",
    ["mode"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
CACHE_HIT_LATENCY = Histogram(
    "ragserve:chunk_cache_hit_duration_seconds",
    "Latency of searches answered by the chunk cache (ranking only, embedding excluded).",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05),
)
PREFETCHES = Counter(
    "ragserve:chunk_cache_prefetches_total",
    "Prefetches of likely next questions, by outcome (admitted, dropped, failed, stale).",
    ["outcome"],
)
QUERY_EMBED_BATCH = Histogram(
    "ragserve:query_embedding_batch_size",
    "Distinct queries embedded per model call by the query micro-batcher.",
    buckets=(1, 2, 4, 8, 16, 32, 64),
)
