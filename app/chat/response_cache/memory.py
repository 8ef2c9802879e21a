"""The response cache in this process: an LRU bounded by bytes, with a TTL."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import TYPE_CHECKING

from app.chat.response_cache.base import (
    CacheCounters,
    CachedAnswer,
    CacheHit,
    CacheKey,
    ResponseCache,
    best_match,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from app.chat.response_cache.base import Admits


class MemoryResponseCache(ResponseCache):
    """``ResponseCache`` in one process: entries by exact key, least recently used
    evicted first once ``max_bytes`` is reached, each expiring ``ttl_s`` after it was
    stored; scopes and documents index the entries for semantic lookup and invalidation."""

    def __init__(
        self,
        max_bytes: int = 64 * 1024 * 1024,
        ttl_s: float = 3600.0,
        *,
        max_per_scope: int = 64,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_bytes = max_bytes
        self._ttl_s = ttl_s
        self._max_per_scope = max_per_scope
        self._clock = clock
        self._entries: OrderedDict[str, tuple[CacheKey, CachedAnswer, float]] = OrderedDict()
        self._scopes: dict[str, OrderedDict[str, None]] = {}
        self._documents: dict[tuple[str, str], set[str]] = {}
        self._bytes = 0
        self._counters = CacheCounters()

    @property
    def counters(self) -> CacheCounters:
        return self._counters

    @property
    def bytes_used(self) -> int:
        return self._bytes

    async def get_exact(self, key: CacheKey) -> CachedAnswer | None:
        found = self._live(key.exact)
        if found is None or found[0].tenant_id != key.tenant_id:
            return None
        self._entries.move_to_end(key.exact)
        return found[1]

    async def get_similar(
        self,
        key: CacheKey,
        embedding: Sequence[float],
        threshold: float,
        admits: Admits | None = None,
    ) -> CacheHit | None:
        members = self._scopes.get(key.scope)
        if not members:
            return None
        candidates: list[tuple[str, CachedAnswer]] = []
        for exact in list(members):
            found = self._live(exact)
            if found is None or found[0].tenant_id != key.tenant_id or not found[1].embedding:
                continue
            candidates.append((exact, found[1]))
        match = best_match(embedding, candidates, threshold, admits, self._counters)
        if match is None:
            return None
        self._entries.move_to_end(match[0])
        return CacheHit(self._entries[match[0]][1], "semantic", match[1])

    async def put(self, key: CacheKey, answer: CachedAnswer) -> None:
        if answer.size > self._max_bytes:
            return
        self._drop(key.exact)
        self._entries[key.exact] = (key, answer, self._clock() + self._ttl_s)
        self._bytes += answer.size
        scope = self._scopes.setdefault(key.scope, OrderedDict())
        scope[key.exact] = None
        while len(scope) > self._max_per_scope:
            self._drop(next(iter(scope)))
            self._counters.count("evicted")
        for document_id in key.document_ids:
            self._documents.setdefault((key.tenant_id, document_id), set()).add(key.exact)
        self._counters.count("stores")
        while self._bytes > self._max_bytes and self._entries:
            self._drop(next(iter(self._entries)))
            self._counters.count("evicted")

    async def invalidate_document(self, tenant_id: str, document_id: str) -> int:
        dropped = sum(
            self._drop(exact) for exact in self._documents.pop((tenant_id, document_id), set())
        )
        self._counters.count("invalidated", dropped)
        return dropped

    async def retain_versions(self, serving: Iterable[tuple[str, str]]) -> int:
        keep = set(serving)
        stale = [
            exact
            for exact, (key, _, _) in self._entries.items()
            if (key.model, key.version) not in keep
        ]
        dropped = sum(self._drop(exact) for exact in stale)
        self._counters.count("invalidated", dropped)
        return dropped

    async def clear(self, tenant_id: str | None = None) -> None:
        for exact, (key, _, _) in list(self._entries.items()):
            if tenant_id is None or key.tenant_id == tenant_id:
                self._drop(exact)

    def _live(self, exact: str) -> tuple[CacheKey, CachedAnswer, float] | None:
        found = self._entries.get(exact)
        if found is not None and found[2] <= self._clock():
            self._drop(exact)
            return None
        return found

    def _drop(self, exact: str) -> bool:
        found = self._entries.pop(exact, None)
        if found is None:
            return False
        key, answer, _ = found
        self._bytes -= answer.size
        scope = self._scopes.get(key.scope)
        if scope is not None:
            scope.pop(exact, None)
            if not scope:
                del self._scopes[key.scope]
        for document_id in key.document_ids:
            members = self._documents.get((key.tenant_id, document_id))
            if members is not None:
                members.discard(exact)
                if not members:
                    del self._documents[(key.tenant_id, document_id)]
        return True
