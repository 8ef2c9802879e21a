"""``ragserve inference``: one engine behind an OpenAI-compatible API, and nothing else.

No database, no retrieval, no tenants: API nodes reach it through ``RemoteEngine``
(or any OpenAI client). An optional bearer key guards the ``/v1`` routes; the
probes and ``/metrics`` stay open to the orchestrator.
"""

from __future__ import annotations

import hmac
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from litestar import Litestar, Request, Response, Router, get, post
from litestar.di import Provide
from litestar.response import Stream
from litestar.status_codes import HTTP_200_OK
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from inference.node.errors import NodeError, error_response
from inference.node.protocol import ChatCompletion, ModelList
from inference.node.serving import NodeServing

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from litestar.connection import ASGIConnection
    from litestar.handlers import BaseRouteHandler

    from inference.engine import Engine

_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@post("/chat/completions", status_code=HTTP_200_OK)
async def chat_completions(request: Request[Any, Any, Any], serving: NodeServing) -> Response[Any]:
    """OpenAI's chat completion: one ``chat.completion``, or ``chat.completion.chunk`` events."""
    result = await serving.chat(await request.body())
    if isinstance(result, ChatCompletion):
        return Response(result.model_dump(mode="json"))
    return Stream(result, media_type="text/event-stream", headers=_SSE_HEADERS)


@get("/models")
async def list_models(serving: NodeServing) -> dict[str, Any]:
    """The one served model, as OpenAI's ``GET /v1/models``; 503 while the engine cannot serve.

    NOTE: ``RemoteEngine.check_health`` asks this route (the one every
    OpenAI-compatible server has), so it answers for the engine too.
    """
    await serving.engine.check_health()
    models: ModelList = serving.models()
    return models.model_dump(mode="json")


@get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@get("/readyz")
async def readyz(serving: NodeServing) -> dict[str, str]:
    """Readiness: the engine can serve (503 otherwise)."""
    await serving.engine.check_health()
    return {"status": "ready", "model": serving.model_id}


@get("/metrics", media_type=CONTENT_TYPE_LATEST)
async def metrics() -> bytes:
    """Prometheus text of the default registry (the engine's metrics included)."""
    return generate_latest(REGISTRY)


def create_node_app(
    engine: Engine,
    *,
    model_id: str | Callable[[], str],
    api_key: str | None = None,
    default_max_tokens: int = 256,
    max_tokens_limit: int = 4096,
) -> Litestar:
    """The inference node's app; its lifespan starts ``engine`` and stops it.

    Args:
        engine: What answers; not yet started.
        model_id: The id clients name, or a function giving it once the engine has
            started (a local engine learns its model's name only by loading it).
        api_key: When set, ``/v1`` requests need ``Authorization: Bearer <api_key>``.
        default_max_tokens: ``max_tokens`` of a request that sets none.
        max_tokens_limit: The largest ``max_tokens`` a request may ask for (400 above).
    """
    serving = NodeServing(
        engine,
        model_id,
        default_max_tokens=default_max_tokens,
        max_tokens_limit=max_tokens_limit,
    )

    @asynccontextmanager
    async def run_engine(_: Litestar) -> AsyncIterator[None]:
        await engine.start()
        try:
            yield
        finally:
            await engine.stop()

    openai = Router(
        "/v1",
        route_handlers=[chat_completions, list_models],
        guards=[] if api_key is None else [_bearer_guard(api_key)],
    )
    return Litestar(
        route_handlers=[openai, healthz, readyz, metrics],
        dependencies={"serving": Provide(lambda: serving, sync_to_thread=False)},
        lifespan=[run_engine],
        exception_handlers={Exception: error_response},
        openapi_config=None,
        logging_config=None,
    )


def _bearer_guard(
    api_key: str,
) -> Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], None]:
    expected = f"Bearer {api_key}".encode()

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        given = connection.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            raise NodeError(401, "Incorrect API key provided.", code="invalid_api_key")

    return guard
