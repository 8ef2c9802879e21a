"""The ASGI middlewares around every route: request ids, timing and the access log."""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING

import structlog
from litestar.enums import ScopeType

from app.core.errors import classify
from app.core.metrics import REQUEST_LATENCY, REQUESTS

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["echo_request_id", "latency_middleware", "request_id_middleware"]

log = structlog.get_logger(__name__)


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


def latency_middleware(app: ASGIApp) -> ASGIApp:
    """Time and log every HTTP request and WebSocket session by its route template.

    Never the raw path: ids would explode the label set, and a query string may
    hold a credential. The log line (``http_request`` or ``websocket_session``) is
    the access log; it carries the request id bound by the outer middleware.
    """

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "websocket.close":
                status = int(message.get("code", 1000))
            await send(message)

        try:
            await app(scope, receive, send_status)
        except Exception as exc:
            # NOTE: errors raised by inner middleware (401 from auth, 429 from rate
            # limits) reach the client through the app's exception handler, outside
            # this middleware, so their status is read off the exception.
            status = _status_of(exc)
            raise
        finally:
            route = str(scope.get("path_template") or "unmatched")
            elapsed = time.perf_counter() - start
            if scope["type"] == ScopeType.HTTP:
                labels = (str(scope.get("method", "")), route, str(status))
                REQUEST_LATENCY.labels(*labels).observe(elapsed)
                REQUESTS.labels(*labels).inc()
                log.info(
                    "http_request",
                    method=labels[0],
                    route=route,
                    status=status,
                    duration_ms=round(elapsed * 1000, 2),
                )
            else:
                log.info(
                    "websocket_session",
                    route=route,
                    close_code=None if status == 500 else status,
                    duration_ms=round(elapsed * 1000, 2),
                )

    return middleware


def _status_of(exc: Exception) -> int:
    return classify(exc).status_code
