"""One Litestar dependency provider per service: a handler names what it uses.

Each provider reads one part the lifespan put in the app's ``State``
(``app/server/lifespan.py``). A handler that declares ``conversations`` gets the
conversation service and nothing else, so its signature says what it touches.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from litestar import Request
from litestar.datastructures import State
from litestar.di import Provide

from app.auth.authenticator import Authenticator
from app.auth.principal import Principal
from app.batches.service import BatchService
from app.chat.pipeline import TurnPipeline
from app.chat.resume import TokenBuffer
from app.chat.runner import TurnRunner
from app.chat.safety_gate import SafetyGate
from app.core.errors import UnavailableError
from app.core.readiness import Readiness
from app.core.settings import Settings
from app.entrypoints.openai.serving import OpenAIServing
from app.idempotency import IdempotencyStore
from app.ratelimit import RateLimiter
from app.routing.catalog import ModelCatalog
from app.routing.registry import ModelRegistry
from app.routing.router import Router
from app.routing.shadow import ShadowStore
from app.routing.usage import UsageLedger
from app.server.drain import Drain
from conversation import (
    ApiKeyService,
    ConversationService,
    FeedbackService,
    LabelingQueue,
    TenantService,
    UserService,
)
from retrieval import RetrievalService

__all__ = ["dependencies"]


def provide_settings(state: State) -> Settings:
    return cast(Settings, state.settings)


def provide_tenants(state: State) -> TenantService:
    return cast(TenantService, state.tenants)


def provide_users(state: State) -> UserService:
    return cast(UserService, state.users)


def provide_api_keys(state: State) -> ApiKeyService:
    return cast(ApiKeyService, state.api_keys)


def provide_conversations(state: State) -> ConversationService:
    return cast(ConversationService, state.conversations)


def provide_feedback(state: State) -> FeedbackService:
    return cast(FeedbackService, state.feedback)


def provide_labeling(state: State) -> LabelingQueue:
    return cast(LabelingQueue, state.labeling)


def provide_retrieval(state: State) -> RetrievalService:
    return cast(RetrievalService, state.retrieval)


def provide_safety(state: State) -> SafetyGate | None:
    return cast(SafetyGate | None, state.safety)


def provide_readiness(state: State) -> Readiness:
    return cast(Readiness, state.readiness)


def provide_catalog(state: State) -> ModelCatalog:
    return cast(ModelCatalog, state.catalog)


def provide_registry(state: State) -> ModelRegistry:
    return cast(ModelRegistry, state.registry)


def provide_router(state: State) -> Router:
    return cast(Router, state.router)


def provide_ledger(state: State) -> UsageLedger:
    return cast(UsageLedger, state.ledger)


def provide_shadow_store(state: State) -> ShadowStore:
    return cast(ShadowStore, state.shadow_store)


def provide_batches(state: State) -> BatchService:
    return cast(BatchService, state.batches)


def provide_pipeline(state: State) -> TurnPipeline:
    """The turn pipeline; 503 on a node that does not generate."""
    pipeline = cast(TurnPipeline | None, state.pipeline)
    if pipeline is None:
        raise UnavailableError("Generation is not enabled on this node.")
    return pipeline


def provide_authenticator(state: State) -> Authenticator:
    return cast(Authenticator, state.authenticator)


def provide_token_buffer(state: State) -> TokenBuffer:
    return cast(TokenBuffer, state.token_buffer)


def provide_turns(state: State) -> TurnRunner | None:
    """The runner of WebSocket turns; ``None`` on a node that does not generate."""
    return cast(TurnRunner | None, state.turns)


def provide_rate_limiter(state: State) -> RateLimiter | None:
    return cast(RateLimiter | None, state.rate_limiter)


def provide_openai(state: State) -> OpenAIServing:
    return cast(OpenAIServing, state.openai)


def provide_idempotency(state: State) -> IdempotencyStore:
    return cast(IdempotencyStore, state.idempotency)


def provide_drain(state: State) -> Drain:
    return cast(Drain, state.drain)


def provide_principal(request: Request[Any, Any, Any]) -> Principal:
    """The caller the authentication middleware found."""
    return cast(Principal, request.user)


def dependencies() -> dict[str, Provide]:
    """Every provider, by the parameter name handlers declare."""
    providers: dict[str, Callable[..., Any]] = {
        "settings": provide_settings,
        "tenants": provide_tenants,
        "users": provide_users,
        "api_keys": provide_api_keys,
        "conversations": provide_conversations,
        "feedback": provide_feedback,
        "labeling": provide_labeling,
        "retrieval": provide_retrieval,
        "safety": provide_safety,
        "readiness": provide_readiness,
        "catalog": provide_catalog,
        "registry": provide_registry,
        "router": provide_router,
        "ledger": provide_ledger,
        "shadow_store": provide_shadow_store,
        "batches": provide_batches,
        "pipeline": provide_pipeline,
        "authenticator": provide_authenticator,
        "token_buffer": provide_token_buffer,
        "turns": provide_turns,
        "rate_limiter": provide_rate_limiter,
        "openai": provide_openai,
        "idempotency": provide_idempotency,
        "drain": provide_drain,
        "principal": provide_principal,
    }
    return {name: Provide(fn, sync_to_thread=False) for name, fn in providers.items()}
