"""Prometheus metrics of the generation engine, named like vLLM's with a ``ragserve:`` prefix."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75,
    1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
)  # fmt: skip
_BATCH_BUCKETS = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128)


@dataclass(frozen=True, slots=True)
class EngineMetrics:
    """The metric families, labelled by ``model_name``; see ``engine_metrics``.

    The ``num_requests_*`` gauges count both priority classes; the
    ``num_batch_requests_*`` ones the batch part of them.
    """

    num_requests_waiting: Gauge
    num_requests_running: Gauge
    num_batch_requests_waiting: Gauge
    num_batch_requests_running: Gauge
    num_preemptions: Counter
    batch_size: Histogram
    time_to_first_token: Histogram
    inter_token_latency: Histogram
    e2e_request_latency: Histogram
    prompt_tokens: Counter
    generation_tokens: Counter
    prefix_cache_queries: Counter
    prefix_cache_hits: Counter
    requests_rejected: Counter
    spec_decode_draft_tokens: Counter
    spec_decode_accepted_tokens: Counter

    def set_running(self, model: str, running: int, batch: int) -> None:
        """The running gauges of ``model``: all sequences, and the batch ones."""
        self.num_requests_running.labels(model).set(running)
        self.num_batch_requests_running.labels(model).set(batch)

    def count_speculation(self, model: str, drafted: int, accepted: int) -> None:
        """A verifying step of ``model``: tokens guessed, and how many were right."""
        self.spec_decode_draft_tokens.labels(model).inc(drafted)
        self.spec_decode_accepted_tokens.labels(model).inc(accepted)

    def set_waiting(self, model: str, waiting: int, batch: int) -> None:
        """The waiting gauges of ``model``: all requests, and the batch ones."""
        self.num_requests_waiting.labels(model).set(waiting)
        self.num_batch_requests_waiting.labels(model).set(batch)


_lock = threading.Lock()
_by_registry: dict[int, tuple[CollectorRegistry, EngineMetrics]] = {}


def engine_metrics(registry: CollectorRegistry | None = None) -> EngineMetrics:
    """The engine metrics registered on ``registry`` (the default one when ``None``).

    NOTE: Prometheus refuses a metric name registered twice, so the families are
    created once per registry and shared by every engine using it; engines tell
    themselves apart by the ``model_name`` label.
    """
    target = REGISTRY if registry is None else registry
    with _lock:
        known = _by_registry.get(id(target))
        if known is not None and known[0] is target:
            return known[1]
        metrics = _create(target)
        _by_registry[id(target)] = (target, metrics)
        return metrics


def _create(registry: CollectorRegistry) -> EngineMetrics:
    labels = ("model_name",)

    def histogram(name: str, doc: str, buckets: tuple[float, ...]) -> Histogram:
        return Histogram(name, doc, labels, buckets=buckets, registry=registry)

    def counter(name: str, doc: str) -> Counter:
        return Counter(name, doc, labels, registry=registry)

    def gauge(name: str, doc: str) -> Gauge:
        return Gauge(name, doc, labels, registry=registry)

    return EngineMetrics(
        num_requests_waiting=gauge("ragserve:num_requests_waiting", "Requests waiting to start."),
        num_requests_running=gauge(
            "ragserve:num_requests_running", "Requests in the running batch."
        ),
        num_batch_requests_waiting=gauge(
            "ragserve:num_batch_requests_waiting",
            "Batch-priority requests waiting to start (preempted ones included).",
        ),
        num_batch_requests_running=gauge(
            "ragserve:num_batch_requests_running",
            "Batch-priority requests in the running batch.",
        ),
        num_preemptions=counter(
            "ragserve:num_preemptions",
            "Batch sequences that gave their slot back to an online request.",
        ),
        batch_size=histogram("ragserve:batch_size", "Sequences per engine step.", _BATCH_BUCKETS),
        time_to_first_token=histogram(
            "ragserve:time_to_first_token_seconds",
            "From submission to the first generated token.",
            _LATENCY_BUCKETS,
        ),
        inter_token_latency=histogram(
            "ragserve:inter_token_latency_seconds",
            "Between consecutive generated tokens of a request.",
            _LATENCY_BUCKETS,
        ),
        e2e_request_latency=histogram(
            "ragserve:e2e_request_latency_seconds",
            "From submission to the end of a request.",
            _LATENCY_BUCKETS,
        ),
        prompt_tokens=counter("ragserve:prompt_tokens", "Prompt tokens of admitted requests."),
        generation_tokens=counter("ragserve:generation_tokens", "Generated tokens."),
        prefix_cache_queries=counter(
            "ragserve:prefix_cache_queries", "Prompt tokens looked up in the prefix cache."
        ),
        prefix_cache_hits=counter(
            "ragserve:prefix_cache_hits", "Prompt tokens found in the prefix cache."
        ),
        requests_rejected=counter(
            "ragserve:requests_rejected", "Requests refused because the queue was full."
        ),
        spec_decode_draft_tokens=counter(
            "ragserve:spec_decode_num_draft_tokens", "Tokens guessed for speculative decoding."
        ),
        spec_decode_accepted_tokens=counter(
            "ragserve:spec_decode_num_accepted_tokens",
            "Guessed tokens the model chose too (each saved a forward pass).",
        ),
    )
