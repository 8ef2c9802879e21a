"""The Litestar app factory: routes, auth, errors, providers and the lifespan, in one place."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from litestar import Litestar, Request, Response
from litestar.exceptions import MethodNotAllowedException
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.routes import HTTPRoute

from app.auth.middleware import AuthMiddleware
from app.console.router import console_router, console_templates
from app.core.errors import error_response
from app.core.logs import configure_logging
from app.core.openapi import describe_models, document_errors, state_limits
from app.core.settings import Settings, get_settings
from app.entrypoints.openai.batches.controller import BatchesController, FilesController
from app.entrypoints.openai.controller import OpenAIController
from app.entrypoints.rest.admin.controller import AdminController
from app.entrypoints.rest.conversations.controller import ConversationController
from app.entrypoints.rest.documents.controller import DocumentController
from app.entrypoints.rest.feedback.controller import FeedbackController
from app.entrypoints.rest.health.controller import HealthController, metrics
from app.entrypoints.rest.labeling.controller import LabelingController
from app.entrypoints.rest.models.controller import ModelsController
from app.entrypoints.rest.search.controller import SearchController
from app.entrypoints.ws.handler import chat_socket
from app.ratelimit.middleware import RateLimitMiddleware
from app.server.lifespan import lifespan
from app.server.middleware import echo_request_id, latency_middleware, request_id_middleware
from app.server.providers import dependencies

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from litestar.datastructures import State


def _method_not_allowed(
    request: Request[Any, Any, Any], exc: MethodNotAllowedException
) -> Response[dict[str, Any]]:
    """A 405 in ragserve's error shape that keeps the ``Allow`` header RFC 9110 asks for."""
    response = error_response(request, exc)
    response.headers.update(exc.headers or {})
    return response


def _allow_every_method(app: Litestar) -> None:
    """Make each path's ``OPTIONS`` answer list all of the path's methods in ``Allow``.

    NOTE: Litestar makes a path's ``OPTIONS`` handler with the route of the path's
    first handler; when a controller's next handler on that path joins (GET and POST
    of ``/v1/documents``), a new route is built and the handler keeps the old one's
    methods. Its one closure cell is pointed at the route that serves the path.
    """
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            fn = handler.fn
            if handler.http_methods == {"OPTIONS"} and fn.__code__.co_freevars == ("self",):
                fn.__closure__[0].cell_contents = route  # type: ignore[index]


def create_app(settings: Settings | None = None, state: State | None = None) -> Litestar:
    """Build the app; its parts open in its lifespan, unless an opened ``state`` is given.

    Args:
        settings: The configuration (the environment's when omitted).
        state: Parts opened by the caller with ``open_state`` (tests that share one
            set of parts between apps); the caller then closes them.
    """
    settings = settings or get_settings()
    configure_logging(settings.server.log_level)

    @asynccontextmanager
    async def given(app: Litestar) -> AsyncIterator[None]:
        app.state.update(state or {})
        yield

    app = Litestar(
        route_handlers=[
            HealthController,
            ConversationController,
            DocumentController,
            SearchController,
            FeedbackController,
            LabelingController,
            AdminController,
            ModelsController,
            OpenAIController,
            FilesController,
            BatchesController,
            chat_socket,
            metrics,
            *([console_router()] if settings.console.enabled else []),
        ],
        dependencies=dependencies(),
        middleware=[
            request_id_middleware,
            latency_middleware,
            DefineMiddleware(
                AuthMiddleware,
                # NOTE: the console signs its users in itself (app/console/security.py).
                exclude=[
                    "^/healthz$",
                    "^/readyz$",
                    "^/metrics$",
                    "^/schema",
                    "^/v1/ws$",
                    "^/admin",
                ],
            ),
            # After authentication: it limits by the caller the auth middleware found.
            RateLimitMiddleware,
        ],
        exception_handlers={
            MethodNotAllowedException: _method_not_allowed,
            Exception: error_response,
        },
        before_send=[echo_request_id],
        lifespan=[lifespan(settings) if state is None else given],
        request_max_body_size=settings.server.max_body_bytes,
        template_config=console_templates(),
        openapi_config=OpenAPIConfig(title="ragserve", version="0.1.0", path="/schema"),
    )
    _allow_every_method(app)
    describe_models(app)
    document_errors(app.openapi_schema)
    state_limits(app.openapi_schema, settings)
    return app
