"""The app's Prometheus metrics (DESIGN.md §8) and the ``/metrics`` route.

Engine metrics live in ``inference``; every family is registered on the process's
default registry, so one scrape shows them all.
"""

from __future__ import annotations

import time
from typing import Any

import structlog
from litestar import Response, get
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

log = structlog.get_logger(__name__)

REQUEST_LATENCY = Histogram(
    "ragserve:http_request_duration_seconds",
    "Latency of HTTP requests, by route template and status.",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
STAGE_LATENCY = Histogram(
    "ragserve:turn_stage_duration_seconds",
    "Latency of each stage of a chat turn.",
    ["stage"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
TURNS = Counter("ragserve:turns_total", "Chat turns by how they ended.", ["finish_reason"])
ERRORS = Counter("ragserve:errors_total", "Errors answered to clients, by code.", ["code"])
REQUESTS = Counter(
    "ragserve:http_requests_total",
    "HTTP requests answered, by route template and status.",
    ["method", "route", "status"],
)
RATE_LIMIT_REJECTIONS = Counter(
    "ragserve:rate_limit_rejections_total",
    "Requests and turns refused by a rate limit, by the limit that refused them.",
    ["scope"],
)
RATE_LIMIT_BACKEND_ERRORS = Counter(
    "ragserve:rate_limit_backend_errors_total",
    "Rate-limit checks let through because the shared bucket store did not answer.",
)


def observe_turn(finish_reason: str | None, timings: dict[str, Any]) -> None:
    """Count a finished turn and export its stored per-stage timings (milliseconds)."""
    TURNS.labels(finish_reason or "unknown").inc()
    for stage, millis in timings.items():
        if isinstance(millis, int | float):
            STAGE_LATENCY.labels(stage).observe(millis / 1000)


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
            if scope["type"] == "http":
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
    # Imported here: app.errors counts errors with this module's ERRORS.
    from app.errors import classify

    return classify(exc).status_code


@get("/metrics", exclude_from_auth=True, include_in_schema=False)
async def metrics() -> Response[bytes]:
    """Every metric in Prometheus' text format."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
