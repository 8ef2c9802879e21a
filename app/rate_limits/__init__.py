"""Rate limits: token buckets per API key and per tenant, in-process or in Redis."""

from __future__ import annotations

from redis.asyncio import Redis

from app.rate_limits.buckets import (
    Bucket,
    BucketsUnavailableError,
    Decision,
    InProcessTokenBuckets,
    RedisTokenBuckets,
    TokenBuckets,
)
from app.rate_limits.limiter import Quota, RateLimiter
from app.settings import Settings

__all__ = [
    "Bucket",
    "BucketsUnavailableError",
    "Decision",
    "InProcessTokenBuckets",
    "Quota",
    "RateLimiter",
    "RedisTokenBuckets",
    "TokenBuckets",
    "build_rate_limiter",
]


def build_rate_limiter(settings: Settings, redis: Redis | None) -> RateLimiter:
    """The limiter of this node: buckets in the shared Redis when there is one."""
    buckets: TokenBuckets = (
        InProcessTokenBuckets()
        if redis is None
        else RedisTokenBuckets(redis, f"{settings.redis.key_prefix}rl:")
    )
    return RateLimiter(buckets, settings.rate_limit)
