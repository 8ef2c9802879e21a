"""The Litestar app factory: routes, auth, errors and the services' lifespan, in one place."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from litestar import Litestar
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from app.auth import AuthMiddleware
from app.controllers.admin import AdminController
from app.controllers.conversations import ConversationController
from app.controllers.documents import DocumentController
from app.controllers.feedback import FeedbackController
from app.controllers.health import HealthController
from app.controllers.search import SearchController
from app.dependencies import provide_principal, provide_services
from app.errors import error_response
from app.logs import configure_logging
from app.metrics import latency_middleware, metrics
from app.openai.controller import OpenAIController
from app.openapi import document_errors
from app.rate_limits.middleware import RateLimitMiddleware
from app.services import Services, open_services
from app.settings import Settings, get_settings
from app.ws.handler import chat_socket


def request_id_middleware(app: ASGIApp) -> ASGIApp:
    """Bind a request id to every log line of a request and echo it as ``X-Request-ID``."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex
        scope[_REQUEST_ID_KEY] = request_id  # type: ignore[literal-required]
        structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            await app(scope, receive, send)
        finally:
            structlog.contextvars.unbind_contextvars("request_id")

    return middleware


_REQUEST_ID_KEY = "ragserve.request_id"


async def echo_request_id(message: Message, scope: Scope) -> None:
    """Put the request id on every response as ``X-Request-ID``.

    NOTE: a ``before_send`` hook rather than a wrapped ``send`` in the middleware:
    errors raised by middlewares (401, 429) are answered by Litestar outside the
    middleware stack, with the original ``send``; this hook sees those responses too.
    """
    request_id = scope.get(_REQUEST_ID_KEY)
    if message["type"] == "http.response.start" and isinstance(request_id, str):
        headers = list(message.get("headers") or [])
        if not any(name.lower() == b"x-request-id" for name, _ in headers):
            headers.append((b"x-request-id", request_id.encode()))
        message["headers"] = headers


def create_app(settings: Settings | None = None, services: Services | None = None) -> Litestar:
    """Build the app; the services open in its lifespan unless ``services`` are given."""
    settings = settings or get_settings()
    configure_logging(settings.server.log_level)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        if services is not None:
            app.state.services = services
            yield
            return
        opened = await open_services(settings)
        app.state.services = opened
        try:
            yield
        finally:
            await opened.close()

    app = Litestar(
        route_handlers=[
            HealthController,
            ConversationController,
            DocumentController,
            SearchController,
            FeedbackController,
            AdminController,
            OpenAIController,
            chat_socket,
            metrics,
        ],
        dependencies={
            "services": Provide(provide_services, sync_to_thread=False),
            "principal": Provide(provide_principal, sync_to_thread=False),
        },
        middleware=[
            request_id_middleware,
            latency_middleware,
            DefineMiddleware(
                AuthMiddleware,
                exclude=["^/healthz$", "^/readyz$", "^/metrics$", "^/schema", "^/v1/ws$"],
            ),
            # After authentication: it limits by the caller the auth middleware found.
            RateLimitMiddleware,
        ],
        exception_handlers={Exception: error_response},
        before_send=[echo_request_id],
        lifespan=[lifespan],
        request_max_body_size=settings.server.max_body_bytes,
        openapi_config=OpenAPIConfig(title="ragserve", version="0.1.0", path="/schema"),
    )
    document_errors(app.openapi_schema)
    return app
