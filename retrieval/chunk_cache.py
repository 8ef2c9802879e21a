"""The node-local chunk cache (docs/retrieval.md): recent queries, candidate sets, hot chunks.

A *query entry* is a recent query of one scope (tenant, collection or all of the
tenant's, mode): its vector, the ids of the wider candidate set the vector store
returned for it, and the generation of its scope when the store was asked. A
*chunk entry* is one chunk (vector, text and payload, BM25 term weights, token
ids), shared by every query entry whose candidates hold it.

Memory is bounded in bytes. Query entries are evicted least recently used first;
a chunk is released when no query entry refers to it any more, so a chunk that
many recent queries keep coming back to stays however old it is.

Term statistics: the cache counts, per tenant, how many of the chunks it holds
contain each BM25 term (a document-frequency table kept as chunks come and go).
Sparse and hybrid hits take their IDF from it, and refuse to serve a query whose
new words the node knows too little about (``lookup``'s ``terms``).

Invalidation: every change to a document bumps the generation of its tenant's
collection (and of the tenant's all-collections scope) and drops the affected
query entries and the document's chunks. A store answer obtained under an older
generation is never admitted, so a search that raced a delete cannot bring the
deleted chunks back.

Not thread-safe: the event loop owns it (every method is fast and never blocks).
"""

from __future__ import annotations

import math
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np

from retrieval.cache_index import QueryIndex
from retrieval.cache_rank import CachedChunk
from retrieval.metrics import CACHE_BYTES, CACHE_ENTRIES, CACHE_EVICTIONS, CACHE_INVALIDATIONS
from retrieval.types import CacheStats, ChunkHit, SearchMode

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Sequence

Scope = tuple[str, str | None, SearchMode]
"""``(tenant_id, collection or None for all of the tenant's, mode)``."""
Generation = int

# Bookkeeping per entry beyond its arrays and text (dicts, dataclass, index slot).
_CHUNK_OVERHEAD = 512
_QUERY_OVERHEAD = 256
# Cosine similarity above which two query vectors are the same query.
_SAME_QUERY = 0.9999


@dataclass(slots=True)
class QueryEntry:
    """A recent query of one scope and the candidate set the store gave it."""

    id: int
    scope: Scope
    vector: np.ndarray
    chunk_keys: list[tuple[str, str]]
    """``(tenant_id, chunk_id)`` of the candidates, in the store's order."""
    limit: int
    """How many candidates the store was asked for."""
    generation: Generation
    created: float
    nbytes: int
    complete: bool = field(default=False)
    """The store returned fewer than ``limit``: the candidates are every match there is."""
    terms: frozenset[int] = field(default=frozenset())
    """The query's BM25 terms (sparse and hybrid scopes), for ``lookup``'s term check."""


@dataclass(slots=True)
class Admission:
    """One store answer, ready to admit."""

    hit: ChunkHit
    vector: np.ndarray
    terms: dict[int, float]
    token_ids: np.ndarray


class ChunkCache:
    """Recent queries with their candidate sets, and the chunks they hold, within a byte budget."""

    def __init__(
        self,
        dimension: int,
        max_bytes: int,
        *,
        ttl_s: float = 300.0,
        device: Literal["cpu", "gpu"] = "cpu",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Make an empty cache.

        Args:
            dimension: Length of the dense vectors.
            max_bytes: Memory budget; entries are evicted to stay within it.
            ttl_s: Age after which a query entry is no longer used (bounds staleness
                when another node changed a document; see docs/retrieval.md).
            device: ``cpu`` or ``gpu``: where the FAISS query indexes live.
            clock: Monotonic seconds (tests pass a fake one).
        """
        if max_bytes < 1 or ttl_s <= 0:
            raise ValueError("max_bytes and ttl_s must be positive")
        self._dimension = dimension
        self._max_bytes = max_bytes
        self._ttl_s = ttl_s
        self._device = device
        self._clock = clock
        self._queries: OrderedDict[int, QueryEntry] = OrderedDict()  # LRU order
        self._chunks: dict[tuple[str, str], CachedChunk] = {}
        self._indexes: dict[Scope, QueryIndex] = {}
        self._generations: dict[tuple[str, str | None], Generation] = {}
        # Bumped by ``clear``: part of every generation, so nothing in flight lands.
        self._epoch = 0
        self._tenant_epochs: dict[str, int] = {}
        # Per tenant: chunks held, and how many of them hold each term.
        self._held: Counter[str] = Counter()
        self._df: dict[str, Counter[int]] = {}
        self._next_id = 0
        self._bytes = 0
        self.hits = self.misses = self.evictions = self.invalidations = 0

    # -- reads -------------------------------------------------------------

    def generation(self, tenant_id: str, collection: str | None) -> Generation:
        """The scope's generation now: take it before asking the store, pass it to ``admit``."""
        return (
            self._generations.get((tenant_id, collection), 0)
            + self._epoch
            + self._tenant_epochs.get(tenant_id, 0)
        )

    def idf(self, tenant_id: str, terms: Collection[int]) -> dict[int, float]:
        """Qdrant's IDF of each term over the chunks this node holds for the tenant.

        NOTE: Qdrant's own IDF is collection-wide and not known on the node; the
        chunks the node holds (every candidate set of the tenant still cached, a few
        hundred chunks once it is warm) estimate it far better than one candidate
        set, in which the topic's own words occur in nearly every chunk and so
        weigh nothing (docs/retrieval.md, "What exact means").
        """
        n = self._held[tenant_id]
        df = self._df.get(tenant_id, Counter())
        return {t: _idf(df[t], n) for t in terms if df[t] > 0}

    def lookup(
        self,
        scope: Scope,
        vector: np.ndarray,
        *,
        threshold: float,
        min_limit: int,
        terms: Collection[int] | None = None,
        max_new_term_idf: float = math.inf,
    ) -> list[CachedChunk] | None:
        """The candidate set of the recent query nearest ``vector``, if close enough.

        Args:
            scope: Tenant, collection and mode of the search.
            vector: The new query's unit vector.
            threshold: Least cosine similarity to the recent query.
            min_limit: Candidates the recent query must have asked the store for
                (unless its answer was complete), so the set is as wide as a miss's.
            terms: The new query's BM25 terms (sparse and hybrid searches). Each term
                the recent query did not have must occur in a chunk the node holds
                for the tenant with an IDF of at most ``max_new_term_idf``; else the
                store's sparse leg could rank chunks outside the candidates first.
            max_new_term_idf: See ``terms``.

        Returns:
            The candidates, or ``None`` (a miss: ask the store).
        """
        found = self._nearest(scope, vector)
        if found is None or found[1] < threshold:
            return None
        entry = self._queries[found[0]]
        usable = (
            self._clock() - entry.created <= self._ttl_s
            and entry.generation == self.generation(scope[0], scope[1])
            and (entry.complete or entry.limit >= min_limit)
        )
        chunks = [self._chunks.get(key) for key in entry.chunk_keys]
        if not usable or any(c is None for c in chunks):
            if self._clock() - entry.created > self._ttl_s:
                self._drop_query(entry)
            return None
        if terms is not None and not self._knows(scope[0], terms, entry, max_new_term_idf):
            return None
        self._queries.move_to_end(entry.id)
        return [c for c in chunks if c is not None]

    def _knows(
        self, tenant_id: str, terms: Collection[int], entry: QueryEntry, max_idf: float
    ) -> bool:
        new = [t for t in terms if t not in entry.terms]
        if not new:
            return True
        known = self.idf(tenant_id, new)
        return all(t in known and known[t] <= max_idf for t in new)

    def _nearest(self, scope: Scope, vector: np.ndarray) -> tuple[int, float] | None:
        index = self._indexes.get(scope)
        return None if index is None else index.nearest(vector)

    # -- writes ------------------------------------------------------------

    def admit(
        self,
        scope: Scope,
        vector: np.ndarray,
        answers: Sequence[Admission],
        *,
        limit: int,
        generation: Generation,
        terms: Collection[int] = (),
    ) -> bool:
        """Remember a store answer for ``vector`` unless the scope changed since it was asked.

        ``terms`` are the query's BM25 terms (sparse and hybrid scopes).

        Returns:
            Whether it was admitted (``False``: stale, or larger than the whole budget).
        """
        tenant_id, collection, _ = scope
        if generation != self.generation(tenant_id, collection):
            return False
        keys: list[tuple[str, str]] = []
        for answer in answers:
            key = (tenant_id, answer.hit.chunk_id)
            chunk = self._chunks.get(key)
            if chunk is None:
                chunk = CachedChunk(
                    hit=answer.hit,
                    vector=np.ascontiguousarray(answer.vector, dtype=np.float32),
                    terms=answer.terms,
                    token_ids=answer.token_ids,
                    nbytes=_chunk_bytes(answer),
                )
                self._hold(key, chunk)
            chunk.refs += 1
            keys.append(key)
        entry = QueryEntry(
            id=self._next_id,
            scope=scope,
            vector=np.ascontiguousarray(vector, dtype=np.float32),
            chunk_keys=keys,
            limit=limit,
            generation=generation,
            created=self._clock(),
            nbytes=_QUERY_OVERHEAD + vector.nbytes * 2 + 64 * len(keys),
            complete=len(answers) < limit,
            terms=frozenset(terms),
        )
        self._next_id += 1
        # The same query again (a repeat, or two concurrent misses): the newer answer
        # replaces the older one rather than shadowing it.
        twin = self._nearest(scope, vector)
        if twin is not None and twin[1] >= _SAME_QUERY:
            self._drop_query(self._queries[twin[0]])
        self._queries[entry.id] = entry
        self._bytes += entry.nbytes
        index = self._indexes.get(scope)
        if index is None:
            index = self._indexes[scope] = QueryIndex(self._dimension, self._device)
        index.add(entry.id, entry.vector)
        self._evict()
        self._publish()
        return entry.id in self._queries

    def invalidate(self, tenant_id: str, collection: str, document_id: str) -> None:
        """A document of ``collection`` changed: forget what may now be wrong.

        Bumps the generations of the collection and of the tenant's all-collections
        scope (so answers in flight are not admitted), drops their query entries and
        the document's chunks.
        """
        self.invalidations += 1
        CACHE_INVALIDATIONS.inc()
        for key in ((tenant_id, collection), (tenant_id, None)):
            self._generations[key] = self._generations.get(key, 0) + 1
        for entry in list(self._queries.values()):
            if entry.scope[0] == tenant_id and entry.scope[1] in (collection, None):
                self._drop_query(entry)
        for key, chunk in list(self._chunks.items()):
            if key[0] == tenant_id and chunk.hit.document_id == document_id:
                # Referenced only by the entries dropped above; defensive all the same.
                self._release(key, chunk)
        self._publish()

    def clear(self, tenant_id: str | None = None) -> None:
        """Forget everything, or everything of one tenant.

        Generations move on, so no store answer in flight lands afterwards.
        """
        if tenant_id is None:
            self._epoch += 1
            self._queries.clear()
            self._chunks.clear()
            self._indexes.clear()
            self._held.clear()
            self._df.clear()
            self._bytes = 0
        else:
            self._tenant_epochs[tenant_id] = self._tenant_epochs.get(tenant_id, 0) + 1
            for entry in list(self._queries.values()):
                if entry.scope[0] == tenant_id:
                    self._drop_query(entry)
        self._publish()

    def _hold(self, key: tuple[str, str], chunk: CachedChunk) -> None:
        self._chunks[key] = chunk
        self._bytes += chunk.nbytes
        self._held[key[0]] += 1
        self._df.setdefault(key[0], Counter()).update(chunk.terms.keys())

    def _release(self, key: tuple[str, str], chunk: CachedChunk) -> None:
        del self._chunks[key]
        self._bytes -= chunk.nbytes
        tenant_id = key[0]
        self._held[tenant_id] -= 1
        df = self._df[tenant_id]
        df.subtract(chunk.terms.keys())
        if self._held[tenant_id] <= 0:
            del self._held[tenant_id], self._df[tenant_id]

    def _evict(self) -> None:
        while self._bytes > self._max_bytes and self._queries:
            _, entry = next(iter(self._queries.items()))
            released = self._drop_query(entry)
            self.evictions += 1 + released
            CACHE_EVICTIONS.labels("query").inc()
            if released:
                CACHE_EVICTIONS.labels("chunk").inc(released)

    def _drop_query(self, entry: QueryEntry) -> int:
        """Forget a query entry; returns how many chunks that released."""
        if self._queries.pop(entry.id, None) is None:
            return 0
        self._bytes -= entry.nbytes
        index = self._indexes.get(entry.scope)
        if index is not None:
            index.remove(entry.id)
            if not len(index):
                del self._indexes[entry.scope]
        released = 0
        for key in entry.chunk_keys:
            chunk = self._chunks.get(key)
            if chunk is None:
                continue
            chunk.refs -= 1
            if chunk.refs <= 0:
                self._release(key, chunk)
                released += 1
        return released

    def _publish(self) -> None:
        CACHE_BYTES.set(self._bytes)
        CACHE_ENTRIES.labels("chunk").set(len(self._chunks))
        CACHE_ENTRIES.labels("query").set(len(self._queries))

    def stats(self, prefetches: int = 0, prefetches_dropped: int = 0) -> CacheStats:
        return CacheStats(
            hits=self.hits,
            misses=self.misses,
            evictions=self.evictions,
            entries=len(self._chunks),
            queries=len(self._queries),
            bytes=self._bytes,
            invalidations=self.invalidations,
            prefetches=prefetches,
            prefetches_dropped=prefetches_dropped,
        )


def _idf(df: int, n: int) -> float:
    # Qdrant's IDF (``Modifier.IDF``): ln(1 + (N - n + 0.5) / (n + 0.5)).
    return math.log((n - df + 0.5) / (df + 0.5) + 1)


def _chunk_bytes(answer: Admission) -> int:
    hit = answer.hit
    strings = len(hit.text.encode("utf-8")) + len(hit.document_name) + len(hit.collection) + 80
    return (
        _CHUNK_OVERHEAD
        + answer.vector.nbytes
        + answer.token_ids.nbytes
        + 100 * len(answer.terms)  # a dict slot, an int and a float per term
        + strings
    )
