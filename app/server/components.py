"""How each part of a running ragserve is built from the settings, one function a part.

Every builder picks an implementation by configuration (Redis when it is set, the
in-process one otherwise), so no other module asks which backend is in use.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from app.batches.queue import BATCH_JOBS
from app.chat.response_cache import (
    MemoryResponseCache,
    RedisResponseCache,
    ResponseCache,
    ResponseCacheConfig,
    TurnCache,
)
from app.chat.response_cache.turns import document_invalidator
from app.chat.resume import (
    FallbackTokenBuffer,
    MemoryTokenBuffer,
    RedisTokenBuffer,
    TokenBuffer,
)
from app.chat.safety_gate import SafetyGate, load_policies
from app.chat.turn import PipelineConfig
from app.core.settings import Settings
from app.ratelimit import InProcessTokenBuckets, RateLimiter, RedisTokenBuckets
from app.routing.catalog import ModelCatalog, default_model
from app.routing.gateway import ModelGateway
from app.routing.router import Router
from app.routing.usage import UsageLedger
from conversation import HotState, MemoryHotState, NoHotState, RedisHotState
from inference import BatchingEngine, Engine, LocalEngine, RemoteEngine
from kernel import redis_breaker
from kernel.queue.memory import InProcessQueue
from kernel.queue.redis import RedisStreamsQueue
from retrieval import (
    CacheConfig,
    EdgeVectorStore,
    ExtractLimits,
    IngestionQuota,
    IngestQueue,
    InProcessIngestQueue,
    ProcessEdgeVectorStore,
    QdrantVectorStore,
    RedisStreamsIngestQueue,
    RetrievalService,
    SentenceTransformerEmbedder,
    StoreCalls,
    VectorStore,
)
from retrieval.types import no_chunks_changed
from safety import PolicyStore, VerdictStore

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from app.routing.specs import EndpointSpec, VersionSpec
    from kernel.queue.base import WorkQueue


_REDIS_CONNECT_TIMEOUT_S = 2.0
_REDIS_SOCKET_TIMEOUT_S = 5.0


def open_redis(settings: Settings) -> Redis | None:
    """A client of the configured Redis (it connects on first use), or ``None``.

    Behind a circuit breaker (``kernel/redis_breaker.py``): after a timeout or a lost
    connection, calls fail at once for ``RAGSERVE_REDIS_FAILURE_COOLDOWN_S``.
    """
    if not settings.redis.url:
        return None
    client, _ = redis_breaker.open_redis(
        settings.redis.url,
        max_connections=settings.redis.max_connections,
        pool_timeout_s=settings.redis.pool_timeout_s,
        connect_timeout_s=_REDIS_CONNECT_TIMEOUT_S,
        read_timeout_s=_REDIS_SOCKET_TIMEOUT_S,
        cooldown_s=settings.redis.failure_cooldown_s,
    )
    return client


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
    """The buffer of running turns' tokens: Redis (any process resumes; a turn Redis
    cannot take stays in this process) or in-process."""
    resume = settings.resume
    local = MemoryTokenBuffer(ttl_s=resume.ttl_s, max_events=resume.max_events)
    if redis is None:
        return local
    shared = RedisTokenBuffer(
        redis,
        key_prefix=settings.redis.key_prefix,
        ttl_s=resume.ttl_s,
        max_events=resume.max_events,
    )
    return FallbackTokenBuffer(shared, local)


def build_ingest_queue(settings: Settings, redis: Redis | None) -> IngestQueue:
    """The ingestion queue: a Redis stream when Redis is configured, else in-process."""
    ing = settings.ingestion
    if redis is None:
        return InProcessIngestQueue(
            claim_idle_s=ing.claim_idle_s,
            max_deliveries=ing.max_deliveries,
            max_queued=ing.max_queued,
        )
    return RedisStreamsIngestQueue(
        redis,
        f"{settings.redis.key_prefix}{ing.stream}",
        ing.group,
        claim_idle_s=ing.claim_idle_s,
        max_deliveries=ing.max_deliveries,
        max_queued=ing.max_queued,
    )


def build_batch_queue(settings: Settings, redis: Redis | None) -> WorkQueue[str]:
    """The queue of batch jobs: a Redis stream when Redis is configured, else in-process."""
    b = settings.batch
    if redis is None:
        return InProcessQueue(
            BATCH_JOBS, claim_idle_s=b.claim_idle_s, max_deliveries=b.max_deliveries
        )
    return RedisStreamsQueue(
        redis,
        BATCH_JOBS,
        f"{settings.redis.key_prefix}{b.stream}",
        b.group,
        claim_idle_s=b.claim_idle_s,
        max_deliveries=b.max_deliveries,
    )


def build_response_cache(settings: Settings, redis: Redis | None) -> ResponseCache | None:
    """Where answers are cached (Redis when configured, else in-process), or ``None``."""
    rc = settings.response_cache
    if not rc.enabled:
        return None
    if redis is None:
        return MemoryResponseCache(
            rc.max_mb * 1024 * 1024, rc.ttl_s, max_per_scope=rc.max_per_scope
        )
    return RedisResponseCache(
        redis, key_prefix=settings.redis.key_prefix, ttl_s=rc.ttl_s, max_per_scope=rc.max_per_scope
    )


def build_turn_cache(
    settings: Settings, cache: ResponseCache | None, retrieval: RetrievalService
) -> TurnCache | None:
    """The response cache as turns use it (questions embedded as searches embed them)."""
    if cache is None:
        return None
    rc = settings.response_cache
    config = ResponseCacheConfig(rc.semantic, rc.threshold, rc.sampled_tenant_ids)
    return TurnCache(cache, config, retrieval.embed_query)


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
        max_batch_share=gen.batch_share,
        batch_prefill_tokens=gen.batch_prefill_tokens,
        batch_slots_under_load=gen.batch_slots_under_load,
        prefill_chunk_tokens=gen.prefill_chunk_tokens,
        max_seq_len=gen.max_seq_len,
        prefix_cache_bytes=gen.prefix_cache_mb << 20,
        decode_weights=gen.decode_weights,
        decode_attention=gen.decode_attention,
        prefill_attention=gen.prefill_attention,
        speculate_tokens=gen.speculate_tokens,
    )


def build_router(settings: Settings, embedded: Engine | None) -> Router:
    """The router over every version's endpoints; remote ones are OpenAI-compatible
    servers reached with ``RemoteEngine``, the embedded one is ``embedded``."""
    routing = settings.routing
    keys = {name: key.get_secret_value() for name, key in routing.api_keys.items()}
    default_key = settings.generation.backend_api_key

    def remote(version: VersionSpec, endpoint: EndpointSpec) -> Engine:
        if version.api_key_name is not None:
            api_key = keys.get(version.api_key_name)
        else:
            api_key = default_key.get_secret_value() if default_key else None
        return RemoteEngine(
            endpoint.url,
            model=version.upstream_model,
            api_key=api_key,
            connect_timeout=routing.connect_timeout_s,
            read_timeout=routing.read_timeout_s,
            model_name=version.model,
            model_version=version.version,
        )

    return Router(
        remote,
        embedded=embedded,
        failure_threshold=routing.failure_threshold,
        failure_window_s=routing.failure_window_s,
        cooldown_s=routing.cooldown_s,
        probe_interval_s=routing.probe_interval_s,
        # A probe may take as long as a connect, or a slow but live node looks dead.
        probe_timeout_s=routing.connect_timeout_s,
        max_attempts=routing.max_attempts,
    )


def build_rate_limiter(settings: Settings, redis: Redis | None) -> RateLimiter:
    """The limiter of this node: buckets in the shared Redis when there is one, this
    process's own while Redis does not answer."""
    if redis is None:
        return RateLimiter(InProcessTokenBuckets(), settings.rate_limit)
    # While Redis does not answer, this process's own buckets decide.
    shared = RedisTokenBuckets(redis, f"{settings.redis.key_prefix}rl:")
    return RateLimiter(shared, settings.rate_limit, fallback=InProcessTokenBuckets())


def build_pipeline_config(settings: Settings) -> PipelineConfig:
    """The turn pipeline's limits and defaults, from the settings."""
    gen = settings.generation
    return PipelineConfig(
        top_k=settings.retrieval.top_k,
        score_floor=settings.retrieval.score_floor,
        history_token_budget=gen.history_token_budget,
        instructions_token_budget=gen.instructions_token_budget,
        context_token_budget=gen.context_token_budget,
        default_max_tokens=gen.max_tokens,
        max_tokens_limit=gen.max_tokens_limit,
        max_message_chars=settings.server.max_message_chars,
        temperature=gen.temperature,
        repetition_penalty=gen.repetition_penalty,
        prompt_bias=gen.prompt_bias,
        no_repeat_ngram=gen.no_repeat_ngram,
    )


def build_retrieval(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    redis: Redis | None,
    embedder: SentenceTransformerEmbedder,
    response_cache: ResponseCache | None = None,
) -> RetrievalService:
    """The retrieval service over the configured vector store (not yet started); a
    document it changes drops the answers ``response_cache`` holds from it."""
    calls = StoreCalls(settings.retrieval.store_threads, settings.retrieval.store_max_waiting)
    store: VectorStore
    if settings.qdrant.url or settings.qdrant.engine == "local":
        store = QdrantVectorStore(
            url=settings.qdrant.url,
            path=None if settings.qdrant.url else str(settings.qdrant_path),
            api_key=settings.qdrant.api_key,
            collection_name=settings.qdrant.collection,
            calls=calls,
        )
    else:
        engine = (
            EdgeVectorStore
            if settings.qdrant.engine == "edge-inprocess"
            else ProcessEdgeVectorStore
        )
        store = engine(
            settings.data_dir.resolve() / "qdrant_edge",
            collection_name=settings.qdrant.collection,
            calls=calls,
        )
    return RetrievalService(
        sessions,
        embedder,
        store,
        chunk_tokens=settings.retrieval.chunk_tokens,
        chunk_overlap=settings.retrieval.chunk_overlap,
        heading_context=settings.retrieval.heading_context,
        queue=build_ingest_queue(settings, redis),
        ingest_workers=settings.ingestion.workers,
        claim_idle_s=settings.ingestion.claim_idle_s,
        max_attempts=settings.ingestion.max_attempts,
        max_document_bytes=settings.ingestion.max_document_bytes,
        extract_limits=ExtractLimits(
            max_pages=settings.ingestion.max_pages,
            max_chars=settings.ingestion.max_extracted_chars,
            timeout_s=settings.ingestion.extract_timeout_s,
            memory_mb=settings.ingestion.extract_memory_mb,
        ),
        quota=IngestionQuota(
            max_bytes=settings.ingestion.quota_bytes,
            max_documents=settings.ingestion.quota_documents,
        ),
        cache=build_cache_config(settings),
        query_window_s=settings.retrieval.query_batch_window_ms / 1000,
        query_max_batch=settings.retrieval.query_max_batch,
        on_chunks_changed=(
            no_chunks_changed if response_cache is None else document_invalidator(response_cache)
        ),
    )


def build_safety_gate(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    embedder: SentenceTransformerEmbedder,
) -> SafetyGate | None:
    """The input and output filters, or ``None`` when safety is switched off."""
    if not settings.safety.enabled:
        return None
    return SafetyGate(
        load_policies(settings.safety.policy_file),
        embedder if settings.safety.similarity else None,
        VerdictStore(sessions),
        cache_dir=settings.model_cache_dir / "exemplars",
        stored=PolicyStore(sessions),
        refresh_s=settings.safety.policy_refresh_s,
    )


async def embedded_gateway(
    engine: Engine, sessions: async_sessionmaker[AsyncSession], name: str | None = None
) -> ModelGateway:
    """A gateway serving only ``engine`` (tests, benchmarks): no registry, no shadows."""
    spec = default_model(Settings(), engine)
    if spec is None:
        raise ValueError("the engine has no model name; start it first")
    if name is not None:
        spec = replace(spec, name=name)

    def refuse(version: VersionSpec, endpoint: EndpointSpec) -> Engine:
        raise ValueError(f"{version.key} is remote; this gateway serves one local engine")

    router = Router(refuse, embedded=engine)
    catalog = ModelCatalog(spec)
    catalog.on_change(
        lambda models: router.sync(v for m in models.values() for v in m.versions.values())
    )
    await catalog.start()
    return ModelGateway(catalog, router, UsageLedger(sessions))
