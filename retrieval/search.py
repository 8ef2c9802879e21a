"""The search path: embed (micro-batched), then the chunk cache, then the vector store.

On a cache hit the candidates a recent, similar query fetched are ranked exactly
against the new query (``retrieval.cache_rank``); on a miss the store is asked for
``k × candidate_multiplier`` candidates, the best ``k`` are returned and the whole
set is admitted for the queries that follow.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from retrieval.cache_index import Device, resolve_device
from retrieval.cache_rank import CachedChunk, rank
from retrieval.chunk_cache import Admission, ChunkCache, Scope
from retrieval.metrics import (
    CACHE_HIT_LATENCY,
    CACHE_LATENCY_SAVED,
    CACHE_LOOKUPS,
    STORE_LATENCY,
)
from retrieval.prefetch import Prefetcher
from retrieval.types import CacheStats, ChunkHit, SearchMode, SearchRequest
from retrieval.vector_store import HYBRID_PREFETCH_MIN, Candidate, VectorStore

if TYPE_CHECKING:
    from collections.abc import Sequence

    from tokenizers import Tokenizer

    from retrieval.query_embedder import QueryEmbedder
    from retrieval.sparse import Bm25Encoder

# The store is never asked for more candidates than this, whatever k × multiplier says.
MAX_CANDIDATES = 400
# Weight of the newest sample in the running mean of store latency.
_EWMA = 0.1


@dataclass(frozen=True, slots=True)
class CacheConfig:
    """How the chunk cache behaves (``app.settings.ChunkCacheSettings`` fills it)."""

    max_bytes: int = 256 << 20
    """Memory budget of the cache."""
    ttl_s: float = 300.0
    """Age after which a cached candidate set is no longer used."""
    device: Device = "auto"
    """Where FAISS searches: ``auto`` (the GPU when FAISS sees one), ``cpu`` or ``gpu``."""
    similarity_threshold: float = 0.85
    """Least cosine similarity to a recent query for its candidates to be reused."""
    candidate_multiplier: int = 5
    """A miss asks the store for ``k`` times this many candidates."""
    prefetch_queue: int = 32
    """Prefetches that may wait; more are dropped."""
    max_new_term_idf: float = 4.0
    """Sparse and hybrid hits: most IDF (over the node's chunks) of a word the new query
    adds to the recent one's; a rarer or unknown word sends the search to the store."""


class SearchPath:
    """Answers searches from the node-local cache when it can, from the store otherwise."""

    def __init__(
        self,
        store: VectorStore,
        queries: QueryEmbedder,
        sparse: Bm25Encoder,
        tokenizer: Tokenizer,
        cache: ChunkCache | None = None,
        config: CacheConfig | None = None,
    ) -> None:
        """Wire the path.

        Args:
            store: The vector store.
            queries: The micro-batching query embedder.
            sparse: The store's BM25 encoder (the cache ranks with the same weights).
            tokenizer: The embedder's tokenizer: cached chunks keep its token ids.
            cache: The node-local chunk cache; ``None`` turns caching and prefetch off.
            config: Cache behaviour.
        """
        self._store = store
        self._queries = queries
        self._sparse = sparse
        self._tokenizer = tokenizer
        self._cache = cache
        self._config = config or CacheConfig()
        self._prefetcher = Prefetcher(self.warm, self._config.prefetch_queue)
        self._store_latency: dict[SearchMode, float] = {}

    @classmethod
    def build(
        cls,
        store: VectorStore,
        queries: QueryEmbedder,
        sparse: Bm25Encoder,
        tokenizer: Tokenizer,
        dimension: int,
        config: CacheConfig | None,
    ) -> SearchPath:
        """A search path with a cache made from ``config``; ``None`` means no cache."""
        cache = None
        if config is not None:
            device = resolve_device(config.device)
            cache = ChunkCache(dimension, config.max_bytes, ttl_s=config.ttl_s, device=device)
        return cls(store, queries, sparse, tokenizer, cache, config)

    @property
    def cache(self) -> ChunkCache | None:
        return self._cache

    async def search(self, request: SearchRequest, *, use_cache: bool = True) -> list[ChunkHit]:
        """The request's ``k`` best chunks, best first."""
        vector = await self._queries.embed(request.query)
        cache = self._cache if use_cache else None
        # NOTE: a sparse floor is a BM25 score, which a cache hit only approximates
        # (local IDF), so such searches always go to the store.
        if cache is None or (request.mode == SearchMode.SPARSE and request.score_floor is not None):
            found = await self._ask_store(request, vector, request.k, request.score_floor)
            return [c.hit for c in found]
        scope: Scope = (request.tenant_id, request.collection, request.mode)
        limit = self._limit(request.k)
        start = time.perf_counter()
        terms = self._query_terms(request)
        cached = self._lookup(cache, scope, vector, limit, terms)
        if cached is not None:
            hits = rank(
                vector,
                terms or [],
                cached,
                mode=request.mode,
                fusion=request.fusion,
                k=request.k,
                score_floor=request.score_floor,
                idf=cache.idf(request.tenant_id, terms) if terms else None,
                legs=max(request.k, HYBRID_PREFETCH_MIN),
            )
            self._count_hit(cache, request.mode, time.perf_counter() - start)
            return hits
        cache.misses += 1
        CACHE_LOOKUPS.labels("miss").inc()
        generation = cache.generation(request.tenant_id, request.collection)
        found = await self._ask_store(request, vector, limit, None)
        await self._admit(cache, scope, vector, found, limit, generation, terms or ())
        floor = request.score_floor
        return [c.hit for c in found if floor is None or c.dense_score >= floor][: request.k]

    async def warm(self, request: SearchRequest) -> bool:
        """One prefetch: fetch and admit the candidates of ``request`` unless the cache has them."""
        cache = self._cache
        if cache is None:
            return False
        vector = await self._queries.embed(request.query)
        scope: Scope = (request.tenant_id, request.collection, request.mode)
        limit = self._limit(request.k)
        terms = self._query_terms(request)
        if self._lookup(cache, scope, vector, limit, terms) is not None:
            return False
        generation = cache.generation(request.tenant_id, request.collection)
        found = await self._ask_store(request, vector, limit, None)
        return await self._admit(cache, scope, vector, found, limit, generation, terms or ())

    def prefetch(self, request: SearchRequest) -> bool:
        """Queue a prefetch; ``False`` when the cache is off or the queue is full."""
        if self._cache is None:
            return False
        return self._prefetcher.submit(request)

    async def settle(self) -> None:
        """Wait for queued prefetches to finish (tests and benchmarks)."""
        await self._prefetcher.join()

    def invalidate(self, tenant_id: str, collection: str, document_id: str) -> None:
        if self._cache is not None:
            self._cache.invalidate(tenant_id, collection, document_id)

    def clear(self, tenant_id: str | None = None) -> None:
        """Empty the cache, or drop one tenant's part of it."""
        if self._cache is not None:
            self._cache.clear(tenant_id)

    def cache_stats(self) -> CacheStats:
        done, dropped = self._prefetcher.done, self._prefetcher.dropped
        if self._cache is None:
            return CacheStats(0, 0, 0, 0, 0, 0, 0, done, dropped)
        return self._cache.stats(done, dropped)

    async def close(self) -> None:
        await self._prefetcher.close()
        await self._queries.close()

    def _limit(self, k: int) -> int:
        return min(MAX_CANDIDATES, max(k, k * self._config.candidate_multiplier))

    def _query_terms(self, request: SearchRequest) -> list[int] | None:
        """The query's BM25 terms; ``None`` in dense mode (no sparse leg)."""
        if request.mode == SearchMode.DENSE:
            return None
        return self._sparse.encode_query(request.query).indices

    def _lookup(
        self,
        cache: ChunkCache,
        scope: Scope,
        vector: np.ndarray,
        limit: int,
        terms: list[int] | None,
    ) -> list[CachedChunk] | None:
        # NOTE: with a sparse leg, a near query's candidates are reused only if every
        # word the new query adds is one the node knows to be common: Qdrant's RRF
        # gives a leg's first chunk as much as a chunk second in both legs, so a rare
        # new word ("explain", "simply") puts chunks that hold it into Qdrant's top k,
        # and the candidates of the recent query never hold them (docs/retrieval.md).
        return cache.lookup(
            scope,
            vector,
            threshold=self._config.similarity_threshold,
            min_limit=limit,
            terms=terms,
            max_new_term_idf=self._config.max_new_term_idf,
        )

    async def _ask_store(
        self, request: SearchRequest, vector: np.ndarray, limit: int, floor: float | None
    ) -> list[Candidate]:
        start = time.perf_counter()
        found = await self._store.search(
            request.tenant_id,
            vector,
            limit,
            collection=request.collection,
            score_floor=floor,
            text=request.query,
            mode=request.mode,
            fusion=request.fusion,
        )
        elapsed = time.perf_counter() - start
        STORE_LATENCY.labels(str(request.mode)).observe(elapsed)
        mean = self._store_latency.get(request.mode)
        self._store_latency[request.mode] = (
            elapsed if mean is None else (1 - _EWMA) * mean + _EWMA * elapsed
        )
        return found

    async def _admit(
        self,
        cache: ChunkCache,
        scope: Scope,
        vector: np.ndarray,
        found: Sequence[Candidate],
        limit: int,
        generation: int,
        terms: Sequence[int] = (),
    ) -> bool:
        # NOTE: BM25 weights and token ids of ~20 chunks cost a few milliseconds of
        # CPU: a worker thread computes them so the event loop stays free.
        answers = await asyncio.to_thread(self._prepare, found)
        return cache.admit(scope, vector, answers, limit=limit, generation=generation, terms=terms)

    def _prepare(self, found: Sequence[Candidate]) -> list[Admission]:
        texts = [c.hit.text for c in found]
        encodings = self._tokenizer.encode_batch(texts, add_special_tokens=False)
        return [
            Admission(
                hit=c.hit,
                vector=c.vector,
                terms=self._sparse.encode_document(c.hit.text).as_dict(),
                token_ids=np.asarray(encoding.ids, dtype=np.int32),
            )
            for c, encoding in zip(found, encodings, strict=True)
        ]

    def _count_hit(self, cache: ChunkCache, mode: SearchMode, elapsed: float) -> None:
        cache.hits += 1
        CACHE_LOOKUPS.labels("hit").inc()
        CACHE_HIT_LATENCY.observe(elapsed)
        store_mean = self._store_latency.get(mode)
        if store_mean is not None and store_mean > elapsed:
            CACHE_LATENCY_SAVED.inc(store_mean - elapsed)
