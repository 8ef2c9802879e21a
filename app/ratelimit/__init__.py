"""Rate limits: token buckets per API key and per tenant, in-process or in Redis."""

from app.ratelimit.buckets import (
    Bucket,
    BucketsUnavailableError,
    Decision,
    InProcessTokenBuckets,
    RedisTokenBuckets,
    TokenBuckets,
)
from app.ratelimit.limiter import Quota, RateLimiter

__all__ = [
    "Bucket",
    "BucketsUnavailableError",
    "Decision",
    "InProcessTokenBuckets",
    "Quota",
    "RateLimiter",
    "RedisTokenBuckets",
    "TokenBuckets",
]
