"""The Litestar app factory: routes, auth, errors and the services' lifespan, in one place."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from litestar import Litestar
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.types import ASGIApp, Receive, Scope, Send

from app.auth import ApiKeyAuthMiddleware
from app.controllers.conversations import ConversationController
from app.controllers.documents import DocumentController, SearchController
from app.controllers.feedback import FeedbackController
from app.controllers.health import HealthController
from app.dependencies import provide_principal, provide_services
from app.errors import error_response
from app.logs import configure_logging
from app.metrics import latency_middleware, metrics
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
        structlog.contextvars.bind_contextvars(request_id=request_id)

        async def send_with_id(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)  # type: ignore[arg-type]

        try:
            await app(scope, receive, send_with_id)  # type: ignore[arg-type]
        finally:
            structlog.contextvars.unbind_contextvars("request_id")

    return middleware


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

    return Litestar(
        route_handlers=[
            HealthController,
            ConversationController,
            DocumentController,
            SearchController,
            FeedbackController,
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
                ApiKeyAuthMiddleware,
                exclude=["^/healthz$", "^/readyz$", "^/metrics$", "^/schema", "^/v1/ws$"],
            ),
        ],
        exception_handlers={Exception: error_response},
        lifespan=[lifespan],
        request_max_body_size=settings.server.max_body_bytes,
        openapi_config=OpenAPIConfig(title="ragserve", version="0.1.0", path="/schema"),
    )
