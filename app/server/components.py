"""How each part of a running ragserve is built from the settings, one function a part.

Every builder picks an implementation by configuration (Redis when it is set, the
in-process one otherwise), so no other module asks which backend is in use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from redis.asyncio import BlockingConnectionPool, Redis

from app.chat.resume import MemoryTokenBuffer, RedisTokenBuffer, TokenBuffer
from app.ratelimit import InProcessTokenBuckets, RateLimiter, RedisTokenBuckets, TokenBuckets
from conversation import HotState, MemoryHotState, NoHotState, RedisHotState
from inference import BatchingEngine, Engine, LocalEngine
from retrieval import CacheConfig, IngestQueue, InProcessIngestQueue, RedisStreamsIngestQueue

if TYPE_CHECKING:
    from app.core.settings import Settings


def open_redis(settings: Settings) -> Redis | None:
    """A client of the configured Redis (it connects on first use), or ``None``."""
    if not settings.redis.url:
        return None
    # NOTE: a blocking pool makes a burst of requests wait for a connection rather
    # than fail (redis-py's default pool raises past its size, which would let rate
    # limit checks fail open under exactly the flood they exist for).
    pool = BlockingConnectionPool.from_url(
        settings.redis.url,
        max_connections=settings.redis.max_connections,
        timeout=settings.redis.pool_timeout_s,
        health_check_interval=30,
    )
    return Redis(connection_pool=pool)


def build_hot_state(settings: Settings, redis: Redis | None) -> HotState:
    """Where recent conversation state is served from: Redis, in-process, or nowhere."""
    hot = settings.hot_state
    if not hot.enabled:
        return NoHotState()
    if redis is None:
        return MemoryHotState(
            max_conversations=hot.max_conversations,
            max_messages=hot.max_messages,
            ttl_s=hot.ttl_s,
            write_lease_s=hot.write_lease_s,
        )
    return RedisHotState(
        redis,
        key_prefix=settings.redis.key_prefix,
        max_messages=hot.max_messages,
        ttl_s=hot.ttl_s,
        write_lease_s=hot.write_lease_s,
        timeout_s=hot.timeout_s,
    )


def build_token_buffer(settings: Settings, redis: Redis | None) -> TokenBuffer:
    """The buffer of running turns' tokens: Redis (any process resumes) or in-process."""
    resume = settings.resume
    if redis is None:
        return MemoryTokenBuffer(ttl_s=resume.ttl_s, max_events=resume.max_events)
    return RedisTokenBuffer(
        redis,
        key_prefix=settings.redis.key_prefix,
        ttl_s=resume.ttl_s,
        max_events=resume.max_events,
    )


def build_ingest_queue(settings: Settings, redis: Redis | None) -> IngestQueue:
    """The ingestion queue: a Redis stream when Redis is configured, else in-process."""
    ing = settings.ingestion
    if redis is None:
        return InProcessIngestQueue(ing.claim_idle_s, ing.max_deliveries, ing.max_queued)
    return RedisStreamsIngestQueue(
        redis,
        f"{settings.redis.key_prefix}{ing.stream}",
        ing.group,
        claim_idle_s=ing.claim_idle_s,
        max_deliveries=ing.max_deliveries,
        max_queued=ing.max_queued,
    )


def build_cache_config(settings: Settings) -> CacheConfig | None:
    """The node-local chunk cache's configuration, or ``None`` when it is switched off."""
    cc = settings.chunk_cache
    if not cc.enabled:
        return None
    return CacheConfig(
        max_bytes=cc.max_mb << 20,
        ttl_s=cc.ttl_s,
        device=cc.device,
        similarity_threshold=cc.similarity_threshold,
        candidate_multiplier=cc.candidate_multiplier,
        prefetch_queue=cc.prefetch_queue,
        max_new_term_idf=cc.max_new_term_idf,
    )


def build_engine(settings: Settings) -> Engine:
    """The configured engine, not yet started."""
    gen = settings.generation
    if gen.engine == "sequential":
        return LocalEngine(
            model_path=gen.model_path,
            cache_dir=settings.model_cache_dir,
            dtype=gen.dtype,
            device=gen.device,
            max_waiting=gen.max_waiting,
            threads=gen.threads,
        )
    return BatchingEngine(
        model_path=gen.model_path,
        cache_dir=settings.model_cache_dir,
        dtype=gen.dtype,
        device=gen.device,
        threads=gen.threads,
        max_running=gen.max_running,
        max_waiting=gen.max_waiting,
        max_waiting_tokens=gen.max_waiting_tokens,
        prefill_chunk_tokens=gen.prefill_chunk_tokens,
        max_seq_len=gen.max_seq_len,
        prefix_cache_bytes=gen.prefix_cache_mb << 20,
    )


def build_rate_limiter(settings: Settings, redis: Redis | None) -> RateLimiter:
    """The limiter of this node: buckets in the shared Redis when there is one."""
    buckets: TokenBuckets = (
        InProcessTokenBuckets()
        if redis is None
        else RedisTokenBuckets(redis, f"{settings.redis.key_prefix}rl:")
    )
    return RateLimiter(buckets, settings.rate_limit)
