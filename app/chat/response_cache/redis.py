"""The response cache in Redis, shared by every API process and worker of a deployment.

Keys under ``<prefix>rc:``:

- ``e:<exact>``: the entry (its key and answer, JSON), expiring ``ttl_s`` after it
  was stored;
- ``s:<scope>``: a sorted set of the scope's exact keys by time stored (the newest
  ``max_per_scope`` kept), for the semantic lookup;
- ``d:<tenant>:<document>``, ``v:<model>:<version>``, ``t:<tenant>``: sets of exact
  keys, so that a changed document, a retired version or a tenant's clear deletes
  its entries at once for every process; ``versions`` lists the ``v:`` sets.

An index may name an entry that has expired; readers skip it and trim the index.
Bounded by the TTL, the per-scope cap and Redis's own ``maxmemory`` policy.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

from app.chat.response_cache.base import (
    CacheCounters,
    CachedAnswer,
    CacheHit,
    CacheKey,
    ResponseCache,
    best_match,
)
from kernel.redis_text import text

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from redis.asyncio import Redis

    from app.chat.response_cache.base import Admits

_SEP = "\x1f"


class RedisResponseCache(ResponseCache):
    """``ResponseCache`` in Redis."""

    def __init__(
        self,
        redis: Redis,
        *,
        key_prefix: str = "ragserve:",
        ttl_s: float = 3600.0,
        max_per_scope: int = 64,
    ) -> None:
        """Args:
        redis: A client (bytes responses); the caller owns and closes it.
        key_prefix: Prefix of every key.
        ttl_s: Seconds an answer is served after it was stored.
        max_per_scope: Questions kept per semantic scope (the newest).
        """
        self._redis = redis
        self._p = f"{key_prefix}rc:"
        self._ttl_ms = int(ttl_s * 1000)
        self._max_per_scope = max_per_scope
        self._counters = CacheCounters()

    @property
    def counters(self) -> CacheCounters:
        return self._counters

    async def get_exact(self, key: CacheKey) -> CachedAnswer | None:
        raw = await self._redis.get(f"{self._p}e:{key.exact}")
        if raw is None:
            return None
        stored_key, answer = _decode(raw)
        return answer if stored_key.tenant_id == key.tenant_id else None

    async def get_similar(
        self,
        key: CacheKey,
        embedding: Sequence[float],
        threshold: float,
        admits: Admits | None = None,
    ) -> CacheHit | None:
        scope = f"{self._p}s:{key.scope}"
        members = [text(m) for m in await self._redis.zrange(scope, 0, -1)]
        if not members:
            return None
        raws = await self._redis.mget([f"{self._p}e:{m}" for m in members])
        answers: dict[str, CachedAnswer] = {}
        gone: list[str] = []
        for exact, raw in zip(members, raws, strict=True):
            if raw is None:
                gone.append(exact)
                continue
            stored_key, answer = _decode(raw)
            if stored_key.tenant_id != key.tenant_id or answer.embedding is None:
                continue
            answers[exact] = answer
        if gone:
            await self._redis.zrem(scope, *gone)
        match = best_match(embedding, list(answers.items()), threshold, admits, self._counters)
        if match is None:
            return None
        return CacheHit(answers[match[0]], "semantic", match[1])

    async def put(self, key: CacheKey, answer: CachedAnswer) -> None:
        entry = json.dumps(
            {
                "key": {
                    "tenant_id": key.tenant_id,
                    "exact": key.exact,
                    "scope": key.scope,
                    "model": key.model,
                    "version": key.version,
                    "document_ids": sorted(key.document_ids),
                },
                "answer": answer.to_dict(),
            },
            separators=(",", ":"),
        )
        version = f"{key.model}{_SEP}{key.version}"
        indexes = [
            f"{self._p}t:{key.tenant_id}",
            f"{self._p}v:{version}",
            *(f"{self._p}d:{key.tenant_id}{_SEP}{d}" for d in key.document_ids),
        ]
        scope = f"{self._p}s:{key.scope}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(f"{self._p}e:{key.exact}", entry, px=self._ttl_ms)
            pipe.zadd(scope, {key.exact: time.time()})
            pipe.zremrangebyrank(scope, 0, -(self._max_per_scope + 1))
            pipe.pexpire(scope, self._ttl_ms)
            pipe.sadd(f"{self._p}versions", version)
            for index in indexes:
                pipe.sadd(index, key.exact)
                pipe.pexpire(index, self._ttl_ms)
            await pipe.execute()
        self._counters.count("stores")

    async def invalidate_document(self, tenant_id: str, document_id: str) -> int:
        dropped = await self._drop_index(f"{self._p}d:{tenant_id}{_SEP}{document_id}")
        self._counters.count("invalidated", dropped)
        return dropped

    async def retain_versions(self, serving: Iterable[tuple[str, str]]) -> int:
        keep = {f"{model}{_SEP}{version}" for model, version in serving}
        dropped = 0
        for raw in await self._redis.smembers(f"{self._p}versions"):
            version = text(raw)
            if version not in keep:
                dropped += await self._drop_index(f"{self._p}v:{version}")
                await self._redis.srem(f"{self._p}versions", version)
        self._counters.count("invalidated", dropped)
        return dropped

    async def clear(self, tenant_id: str | None = None) -> None:
        if tenant_id is not None:
            await self._drop_index(f"{self._p}t:{tenant_id}")
            return
        async for name in self._redis.scan_iter(match=f"{self._p}*", count=500):
            await self._redis.delete(name)

    async def _drop_index(self, index: str) -> int:
        """Delete the entries an index set names, then the set; returns entries deleted."""
        members = [text(m) for m in await self._redis.smembers(index)]
        dropped = 0
        if members:
            dropped = int(await self._redis.delete(*(f"{self._p}e:{m}" for m in members)))
        await self._redis.delete(index)
        return dropped


def _decode(raw: bytes | str) -> tuple[CacheKey, CachedAnswer]:
    data = json.loads(raw)
    key = data["key"]
    return (
        CacheKey(
            tenant_id=key["tenant_id"],
            exact=key["exact"],
            scope=key["scope"],
            model=key["model"],
            version=key["version"],
            document_ids=frozenset(key["document_ids"]),
        ),
        CachedAnswer.from_dict(data["answer"]),
    )
