"""The composition root: every service of a running ragserve, opened and closed together."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import structlog
from redis.asyncio import BlockingConnectionPool, Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.errors import UnavailableError
from app.pipeline import PipelineConfig, TurnPipeline
from app.rate_limits import RateLimiter, build_rate_limiter
from app.safety_gate import SafetyGate, load_policies
from app.settings import Settings
from app.streams import MemoryTokenBuffer, RedisTokenBuffer, TokenBuffer
from app.streams.runner import TurnRunner
from conversation import (
    ApiKeyService,
    ConversationService,
    FeedbackService,
    HotState,
    MemoryHotState,
    NoHotState,
    RedisHotState,
    TenantService,
    create_engine,
    session_factory,
)
from inference import BatchingEngine, Engine, LocalEngine
from retrieval import (
    CacheConfig,
    IngestQueue,
    InProcessIngestQueue,
    QdrantVectorStore,
    RedisStreamsIngestQueue,
    RetrievalService,
    SentenceTransformerEmbedder,
)
from safety import LabelingQueue, VerdictStore

log = structlog.get_logger(__name__)


@dataclass
class Services:
    settings: Settings
    db: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    tenants: TenantService
    api_keys: ApiKeyService
    conversations: ConversationService
    feedback: FeedbackService
    retrieval: RetrievalService
    engine: Engine | None
    pipeline: TurnPipeline | None
    safety: SafetyGate | None
    redis: Redis | None = None
    """The shared Redis, when ``RAGSERVE_REDIS_URL`` is set; ``None`` means in-process."""
    rate_limiter: RateLimiter | None = None
    """Per-key and per-tenant rate limits (in ``redis`` when set); ``None`` turns them off."""
    token_buffer: TokenBuffer = field(default_factory=MemoryTokenBuffer)
    """Every running turn's tokens, for ``resume`` (in ``redis`` when set)."""
    turns: TurnRunner | None = None
    """The WebSocket turns running on this process (``None`` without a generator)."""

    def require_pipeline(self) -> TurnPipeline:
        """The turn pipeline; raises ``UnavailableError`` (503) on a node without a generator."""
        if self.pipeline is None:
            raise UnavailableError("Generation is not enabled on this node.")
        return self.pipeline

    async def close(self) -> None:
        if self.turns is not None:
            await self.turns.close()
        if self.engine is not None:
            await self.engine.stop()
        await self.retrieval.close()
        if self.redis is not None:
            await self.redis.aclose()
        await self.db.dispose()


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


async def open_services(
    settings: Settings, *, with_engine: bool = True, with_ingest_workers: bool = True
) -> Services:
    """Open the database, the vector store and the models.

    Args:
        settings: The configuration.
        with_engine: Load the generator too (the CLI's ``ingest`` needs no generator).
        with_ingest_workers: Run this process's ingestion workers (the CLI indexes inline).
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    redis = open_redis(settings)
    rate_limiter = build_rate_limiter(settings, redis)
    db = create_engine(settings.database_url, echo=settings.database.echo)
    sessions = session_factory(db)
    embedder = await asyncio.to_thread(
        SentenceTransformerEmbedder,
        settings.embedding.model_path,
        settings.embedding.device,
        settings.embedding.batch_size,
    )
    store = QdrantVectorStore(
        url=settings.qdrant.url,
        path=None if settings.qdrant.url else str(settings.qdrant_path),
        api_key=settings.qdrant.api_key,
        collection_name=settings.qdrant.collection,
    )
    retrieval = RetrievalService(
        sessions,
        embedder,
        store,
        chunk_tokens=settings.retrieval.chunk_tokens,
        chunk_overlap=settings.retrieval.chunk_overlap,
        queue=build_ingest_queue(settings, redis),
        ingest_workers=settings.ingestion.workers,
        claim_idle_s=settings.ingestion.claim_idle_s,
        cache=build_cache_config(settings),
        query_window_s=settings.retrieval.query_batch_window_ms / 1000,
        query_max_batch=settings.retrieval.query_max_batch,
    )
    await retrieval.start()
    if with_ingest_workers:
        await retrieval.start_workers()
    conversations = ConversationService(sessions, build_hot_state(settings, redis))
    token_buffer = build_token_buffer(settings, redis)
    turns: TurnRunner | None = None
    engine: Engine | None = None
    pipeline: TurnPipeline | None = None
    safety: SafetyGate | None = None
    if settings.safety.enabled:
        safety = SafetyGate(
            load_policies(settings.safety.policy_file),
            embedder if settings.safety.similarity else None,
            VerdictStore(sessions),
            LabelingQueue(sessions),
        )
    if with_engine:
        gen = settings.generation
        engine = build_engine(settings)
        await engine.start()
        if safety is not None:
            await safety.start()
        pipeline = TurnPipeline(
            conversations,
            retrieval,
            engine,
            PipelineConfig(
                top_k=settings.retrieval.top_k,
                score_floor=settings.retrieval.score_floor,
                history_token_budget=gen.history_token_budget,
                context_token_budget=gen.context_token_budget,
                default_max_tokens=gen.max_tokens,
                max_tokens_limit=gen.max_tokens_limit,
                max_message_chars=settings.server.max_message_chars,
                temperature=gen.temperature,
                repetition_penalty=gen.repetition_penalty,
            ),
            safety,
            on_usage=rate_limiter.on_usage,
        )
        turns = TurnRunner(pipeline, token_buffer, grace_s=settings.resume.grace_s)
    log.info("services_open", database=db.url.render_as_string(hide_password=True))
    return Services(
        settings=settings,
        db=db,
        sessions=sessions,
        tenants=TenantService(sessions),
        api_keys=ApiKeyService(sessions),
        conversations=conversations,
        feedback=FeedbackService(sessions),
        retrieval=retrieval,
        engine=engine,
        pipeline=pipeline,
        safety=safety,
        redis=redis,
        rate_limiter=rate_limiter,
        token_buffer=token_buffer,
        turns=turns,
    )
