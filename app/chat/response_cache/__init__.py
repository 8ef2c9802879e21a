"""The response cache: exact and semantic, per tenant, in front of generation."""

from app.chat.response_cache.base import (
    CachedAnswer,
    CacheHit,
    CacheKey,
    CacheProbe,
    ResponseCache,
)
from app.chat.response_cache.memory import MemoryResponseCache
from app.chat.response_cache.redis import RedisResponseCache
from app.chat.response_cache.turns import ResponseCacheConfig, TurnCache

__all__ = [
    "CacheHit",
    "CacheKey",
    "CacheProbe",
    "CachedAnswer",
    "MemoryResponseCache",
    "RedisResponseCache",
    "ResponseCache",
    "ResponseCacheConfig",
    "TurnCache",
]
