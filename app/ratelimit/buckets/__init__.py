"""Token buckets: the interface (``base.py``), in-process (``memory.py``), Redis (``redis.py``)."""

from app.ratelimit.buckets.base import Bucket, BucketsUnavailableError, Decision, TokenBuckets
from app.ratelimit.buckets.memory import InProcessTokenBuckets
from app.ratelimit.buckets.redis import RedisTokenBuckets

__all__ = [
    "Bucket",
    "BucketsUnavailableError",
    "Decision",
    "InProcessTokenBuckets",
    "RedisTokenBuckets",
    "TokenBuckets",
]
