"""The app's Prometheus metric families (``docs/operations.md`` lists them).

Engine metrics live in ``inference``; every family is registered on the process's
default registry, so one scrape shows them all.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge, Histogram

REQUEST_LATENCY = Histogram(
    "ragserve:http_request_duration_seconds",
    "Latency of HTTP requests, by route template and status.",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
STAGE_LATENCY = Histogram(
    "ragserve:turn_stage_duration_seconds",
    "Latency of each stage of a chat turn, by the model version that answered.",
    ["stage", "model", "version"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
TURNS = Counter(
    "ragserve:turns_total",
    "Chat turns by how they ended and the model version that answered.",
    ["finish_reason", "model", "version"],
)
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
    "Rate-limit checks the shared bucket store did not answer (decided in-process).",
)


def observe_turn(
    finish_reason: str | None, timings: dict[str, Any], model: str, version: str
) -> None:
    """Count a finished turn and export its stored per-stage timings (milliseconds)."""
    TURNS.labels(finish_reason or "unknown", model, version).inc()
    for stage, millis in timings.items():
        if isinstance(millis, int | float):
            STAGE_LATENCY.labels(stage, model, version).observe(millis / 1000)


BATCH_REQUESTS = Counter(
    "ragserve:batch_requests_total",
    "Batch lines answered, by endpoint and outcome (completed, failed, expired).",
    ["endpoint", "outcome"],
)
BATCHES_FINISHED = Counter(
    "ragserve:batches_finished_total", "Batches that ended, by final status.", ["status"]
)
BATCH_LINES_RUNNING = Gauge(
    "ragserve:batch_lines_running", "Batch lines this process is running now."
)
