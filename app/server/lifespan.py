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
from app.batches.execution import LineExecutor
from app.batches.runner import BatchRunner
from app.batches.service import BatchService
from app.batches.store import BatchStore
from app.chat.keeper import AnswerKeeper
from app.chat.pipeline import TurnPipeline
from app.chat.runner import TurnRunner
from app.console.parts import open_console
from app.core.readiness import Readiness
from app.entrypoints.openai.serving import OpenAIServing
from app.idempotency import IdempotencyStore
from app.labeling.intake import AnswerReview
from app.labeling.queue import build_labeling_queue
from app.routing.catalog import ModelCatalog, default_model
from app.routing.gateway import ModelGateway, check_serving
from app.routing.registry import ModelRegistry
from app.routing.shadow import ShadowRunner, ShadowStore
from app.routing.usage import UsageLedger
from app.server.components import (
    build_batch_queue,
    build_engine,
    build_hot_state,
    build_pipeline_config,
    build_rate_limiter,
    build_response_cache,
    build_retrieval,
    build_router,
    build_safety_gate,
    build_token_buffer,
    build_turn_cache,
    open_redis,
)
from app.server.drain import Drain
from conversation import (
    AnswerStreams,
    ApiKeyService,
    ConversationService,
    FeedbackService,
    TenantService,
    UserService,
)
from kernel.db import create_engine, session_factory
from kernel.torch_threads import share_cores_with_engine
from retrieval import SentenceTransformerEmbedder

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Sequence

    from litestar import Litestar

    from app.core.settings import Settings
    from app.routing.specs import ModelSpec, VersionSpec
    from inference import Engine
    from retrieval import RetrievalService

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
        ``labeling``, ``retrieval``, ``safety``, ``engine``, ``pipeline``, ``turns``,
        ``token_buffer``, ``rate_limiter``, ``registry``, ``catalog``, ``router``,
        ``ledger``, ``shadow_store``, ``gateway``, ``openai``, ``readiness``,
        ``idempotency``, ``drain`` and ``batches``.
        ``redis``, ``safety``, ``engine``, ``gateway``, ``pipeline`` and ``turns``
        are ``None`` where not configured.
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    gen = settings.generation
    if with_engine and not gen.backend_url_list and gen.device == "cpu":
        # Before the embedder loads: only the engine's thread runs torch on every core.
        stack.callback(share_cores_with_engine(asyncio.get_running_loop()))
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
    state.labeling = labeling = build_labeling_queue(settings, sessions)
    hot_state = build_hot_state(settings, redis)
    state.conversations = conversations = ConversationService(sessions, hot_state)
    state.idempotency = idempotency = IdempotencyStore(sessions)
    await idempotency.start()
    stack.push_async_callback(idempotency.stop)
    state.token_buffer = token_buffer = build_token_buffer(settings, redis)
    embedder = await asyncio.to_thread(
        SentenceTransformerEmbedder,
        settings.embedding.model_path,
        settings.embedding.device,
        settings.embedding.batch_size,
    )
    response_cache = build_response_cache(settings, redis)
    state.retrieval = retrieval = build_retrieval(
        settings, sessions, redis, embedder, response_cache
    )
    await retrieval.start()
    stack.push_async_callback(retrieval.close)
    if with_ingest_workers:
        await retrieval.start_workers()
    state.safety = safety = build_safety_gate(settings, sessions, embedder)
    state.engine = state.pipeline = state.turns = state.gateway = None
    engine: Engine | None = None
    pipeline: TurnPipeline | None = None
    # NOTE: a node given backend URLs routes every turn to them and loads no model.
    if with_engine and not gen.backend_url_list:
        state.engine = engine = build_engine(settings)
        await engine.start()
        stack.push_async_callback(engine.stop)
    state.registry = registry = ModelRegistry(sessions)
    state.ledger = ledger = UsageLedger(sessions)
    state.shadow_store = shadow_store = ShadowStore(sessions)
    state.router = router = build_router(settings, engine)
    stack.push_async_callback(router.stop)
    state.catalog = catalog = ModelCatalog(
        default_model(settings, engine),
        registry,
        refresh_s=settings.routing.refresh_s,
        default_name=settings.routing.default_model,
    )
    catalog.on_change(lambda models: router.sync(_versions(models)))
    state.response_cache = turn_cache = build_turn_cache(settings, response_cache, retrieval)
    if turn_cache is not None:
        catalog.on_change(turn_cache.on_models)
    await catalog.start()
    stack.push_async_callback(catalog.stop)
    await router.start()
    if with_engine:
        shadows = ShadowRunner(
            router.generate,
            lambda texts: _embed(retrieval, texts),
            shadow_store,
            queue_size=settings.routing.shadow_queue,
            concurrency=settings.routing.shadow_concurrency,
        )
        await shadows.start()
        stack.push_async_callback(shadows.stop)
        state.gateway = gateway = ModelGateway(catalog, router, ledger, shadows=shadows)
        if safety is not None:
            await safety.start()
            stack.push_async_callback(safety.stop)
        state.pipeline = pipeline = TurnPipeline(
            conversations,
            retrieval,
            gateway,
            build_pipeline_config(settings),
            safety,
            on_usage=rate_limiter.on_usage,
            answers=(answers := AnswerStreams(sessions, hot_state)),
            cache=turn_cache,
            review=AnswerReview(labeling, low_score=settings.labeling.low_score),
        )
        state.turns = turns = TurnRunner(pipeline, token_buffer, grace_s=settings.resume.grace_s)
        stack.push_async_callback(turns.close)
        keeper = AnswerKeeper(
            answers,
            pipeline.progress,
            token_buffer,
            heartbeat_s=settings.server.answer_heartbeat_s,
            stale_s=settings.server.answer_stale_s,
        )
        await keeper.start()
        stack.push_async_callback(keeper.stop)
    state.drain = Drain(settings.server.drain_grace_s, pipeline)
    state.openai = openai = OpenAIServing(catalog, pipeline, retrieval, settings)
    store = BatchStore(sessions)
    batch_queue = build_batch_queue(settings, redis)
    state.batches = BatchService(
        store,
        batch_queue,
        settings.batch,
        default_max_tokens=settings.generation.max_tokens,
    )
    if with_engine and settings.batch.workers:
        runner = BatchRunner(store, batch_queue, LineExecutor(openai, rate_limiter), settings.batch)
        await runner.start()
        stack.push_async_callback(runner.stop)
    if settings.console.enabled:
        state.update(await open_console(settings, sessions, redis, stack))
    state.readiness = Readiness(
        db, retrieval, engine, redis, generation=lambda: check_serving(catalog, router)
    )
    log.info("services_open", database=db.url.render_as_string(hide_password=True))
    return state


def _versions(models: dict[str, ModelSpec]) -> list[VersionSpec]:
    return [version for model in models.values() for version in model.versions.values()]


async def _embed(retrieval: RetrievalService, texts: Sequence[str]) -> list[list[float]]:
    vectors, _ = await retrieval.embed(texts)
    return vectors


def lifespan(settings: Settings) -> Callable[[Litestar], AbstractAsyncContextManager[None]]:
    """The app's lifespan: open every part into ``app.state``, close them on shutdown."""

    @asynccontextmanager
    async def run(app: Litestar) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            app.state.update(await open_state(settings, stack))
            yield

    return run
