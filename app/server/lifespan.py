"""Opening and closing every part of a running ragserve, in the app's lifespan.

Each part is put in the app's ``State`` under its own name, and handed to handlers
one at a time by ``app/server/providers.py``: no handler sees the whole set. The
parts close in the reverse order they opened, through one ``AsyncExitStack``.
"""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING

import structlog
from litestar.datastructures import State

from app.auth.authenticator import Authenticator
from app.chat.pipeline import TurnPipeline
from app.chat.runner import TurnRunner
from app.chat.safety_gate import SafetyGate, load_policies
from app.chat.turn import PipelineConfig
from app.core.readiness import Readiness
from app.server.components import (
    build_cache_config,
    build_engine,
    build_hot_state,
    build_ingest_queue,
    build_rate_limiter,
    build_token_buffer,
    open_redis,
)
from conversation import (
    ApiKeyService,
    ConversationService,
    FeedbackService,
    LabelingQueue,
    TenantService,
    UserService,
)
from kernel.db import create_engine, session_factory
from retrieval import QdrantVectorStore, RetrievalService, SentenceTransformerEmbedder
from safety import VerdictStore

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from litestar import Litestar
    from redis.asyncio import Redis
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from app.core.settings import Settings
    from inference import Engine

__all__ = ["lifespan", "open_state"]

log = structlog.get_logger(__name__)


async def open_state(
    settings: Settings,
    stack: AsyncExitStack,
    *,
    with_engine: bool = True,
    with_ingest_workers: bool = True,
) -> State:
    """Open the database, Redis, the vector store and the models; ``stack`` closes them.

    Args:
        settings: The configuration.
        stack: Closes every part opened here, in reverse order, when it exits.
        with_engine: Load the generator too (the CLI's ``ingest`` needs no generator).
        with_ingest_workers: Run this process's ingestion workers (the CLI indexes inline).

    Returns:
        The parts by name: ``settings``, ``db``, ``sessions``, ``redis``, ``tenants``,
        ``users``, ``api_keys``, ``authenticator``, ``conversations``, ``feedback``,
        ``retrieval``, ``safety``, ``engine``, ``pipeline``, ``turns``,
        ``token_buffer``, ``rate_limiter`` and ``readiness``. ``redis``, ``safety``,
        ``engine``, ``pipeline`` and ``turns`` are ``None`` where not configured.
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    state = State({"settings": settings})
    state.redis = redis = open_redis(settings)
    if redis is not None:
        stack.push_async_callback(redis.aclose)
    state.rate_limiter = rate_limiter = build_rate_limiter(settings, redis)
    state.db = db = create_engine(settings.database_url, echo=settings.database.echo)
    stack.push_async_callback(db.dispose)
    state.sessions = sessions = session_factory(db)
    state.tenants = TenantService(sessions)
    state.users = users = UserService(sessions)
    state.api_keys = api_keys = ApiKeyService(sessions)
    state.authenticator = Authenticator(settings.auth, api_keys, users)
    state.feedback = FeedbackService(sessions)
    state.conversations = conversations = ConversationService(
        sessions, build_hot_state(settings, redis)
    )
    state.token_buffer = token_buffer = build_token_buffer(settings, redis)
    embedder = await asyncio.to_thread(
        SentenceTransformerEmbedder,
        settings.embedding.model_path,
        settings.embedding.device,
        settings.embedding.batch_size,
    )
    state.retrieval = retrieval = _retrieval(settings, sessions, redis, embedder)
    await retrieval.start()
    stack.push_async_callback(retrieval.close)
    if with_ingest_workers:
        await retrieval.start_workers()
    state.safety = safety = _safety_gate(settings, sessions, embedder)
    state.engine = state.pipeline = state.turns = None
    engine: Engine | None = None
    if with_engine:
        state.engine = engine = build_engine(settings)
        await engine.start()
        stack.push_async_callback(engine.stop)
        if safety is not None:
            await safety.start()
        state.pipeline = pipeline = TurnPipeline(
            conversations,
            retrieval,
            engine,
            pipeline_config(settings),
            safety,
            on_usage=rate_limiter.on_usage,
        )
        state.turns = turns = TurnRunner(pipeline, token_buffer, grace_s=settings.resume.grace_s)
        stack.push_async_callback(turns.close)
    state.readiness = Readiness(db, retrieval, engine, redis)
    log.info("services_open", database=db.url.render_as_string(hide_password=True))
    return state


def pipeline_config(settings: Settings) -> PipelineConfig:
    """The turn pipeline's limits and defaults, from the settings."""
    gen = settings.generation
    return PipelineConfig(
        top_k=settings.retrieval.top_k,
        score_floor=settings.retrieval.score_floor,
        history_token_budget=gen.history_token_budget,
        context_token_budget=gen.context_token_budget,
        default_max_tokens=gen.max_tokens,
        max_tokens_limit=gen.max_tokens_limit,
        max_message_chars=settings.server.max_message_chars,
        temperature=gen.temperature,
        repetition_penalty=gen.repetition_penalty,
    )


def _retrieval(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    redis: Redis | None,
    embedder: SentenceTransformerEmbedder,
) -> RetrievalService:
    """The retrieval service over the configured vector store (not yet started)."""
    store = QdrantVectorStore(
        url=settings.qdrant.url,
        path=None if settings.qdrant.url else str(settings.qdrant_path),
        api_key=settings.qdrant.api_key,
        collection_name=settings.qdrant.collection,
    )
    return RetrievalService(
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


def _safety_gate(
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
        LabelingQueue(sessions),
    )


def lifespan(settings: Settings) -> Callable[[Litestar], AbstractAsyncContextManager[None]]:
    """The app's lifespan: open every part into ``app.state``, close them on shutdown."""

    @asynccontextmanager
    async def run(app: Litestar) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            app.state.update(await open_state(settings, stack))
            yield

    return run
