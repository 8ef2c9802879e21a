"""The composition root: every service of a running ragserve, opened and closed together."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import structlog
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.pipeline import PipelineConfig, TurnPipeline
from app.safety_gate import SafetyGate, load_policies
from app.settings import Settings
from conversation import (
    ApiKeyService,
    ConversationService,
    FeedbackService,
    TenantService,
    create_engine,
    session_factory,
)
from inference import BatchingEngine, Engine, LocalEngine
from retrieval import QdrantVectorStore, RetrievalService, SentenceTransformerEmbedder
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

    async def close(self) -> None:
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
    return Redis.from_url(settings.redis.url, decode_responses=False, health_check_interval=30)


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


async def open_services(settings: Settings, *, with_engine: bool = True) -> Services:
    """Open the database, the vector store and the models.

    Args:
        settings: The configuration.
        with_engine: Load the generator too (the CLI's ``ingest`` needs no generator).
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    redis = open_redis(settings)
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
    )
    await retrieval.start()
    conversations = ConversationService(sessions)
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
        )
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
    )
