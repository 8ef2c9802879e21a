"""The app's Prometheus metrics (DESIGN.md §8) and the ``/metrics`` route.

Engine metrics live in ``inference``; every family is registered on the process's
default registry, so one scrape shows them all.
"""

from __future__ import annotations

import time
from typing import Any

from litestar import Response, get
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

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


def observe_turn(finish_reason: str | None, timings: dict[str, Any]) -> None:
    """Count a finished turn and export its stored per-stage timings (milliseconds)."""
    TURNS.labels(finish_reason or "unknown").inc()
    for stage, millis in timings.items():
        if isinstance(millis, int | float):
            STAGE_LATENCY.labels(stage).observe(millis / 1000)


def latency_middleware(app: ASGIApp) -> ASGIApp:
    """Time every HTTP request by its route template (never the raw path: ids would
    explode the label set)."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await app(scope, receive, send_status)
        finally:
            route = str(scope.get("path_template") or "unmatched")
            REQUEST_LATENCY.labels(str(scope.get("method", "")), route, str(status)).observe(
                time.perf_counter() - start
            )

    return middleware


@get("/metrics", exclude_from_auth=True, include_in_schema=False)
async def metrics() -> Response[bytes]:
    """Every metric in Prometheus' text format."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
