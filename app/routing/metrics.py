"""The router's Prometheus metrics, named like vLLM's with a ``ragserve:`` prefix.

Labelled by model, version and endpoint URL (without credentials). Endpoints come
from the registry, so the label sets stay bounded; the gauges of an endpoint the
router drops are removed with it.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from typing import Literal, Protocol

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge

__all__ = ["Observed", "Outcome", "RouterMetrics", "router_metrics"]

Outcome = Literal["ok", "error", "overloaded", "unavailable", "invalid", "cancelled"]
"""How one attempt on an endpoint ended: ``error`` broke after the first token (or
failed in a way the engine contract does not name), ``invalid`` was refused as a bad
request (4xx, not retried)."""


class Observed(Protocol):
    """What the metrics read of an endpoint (``app/routing/endpoints.py``'s ``Endpoint``)."""

    @property
    def model(self) -> str: ...

    @property
    def version(self) -> str: ...

    @property
    def label(self) -> str: ...

    @property
    def outstanding(self) -> int: ...

    @property
    def serving(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class RouterMetrics:
    """The router's metric families and the updates the router makes."""

    endpoint_healthy: Gauge
    requests_outstanding: Gauge
    requests: Counter
    retries: Counter
    cooldowns: Counter

    def track(self, endpoint: Observed) -> None:
        """Export an endpoint's health and load as they are now."""
        labels = (endpoint.model, endpoint.version, endpoint.label)
        self.endpoint_healthy.labels(*labels).set(1 if endpoint.serving else 0)
        self.requests_outstanding.labels(*labels).set(endpoint.outstanding)

    def forget(self, endpoint: Observed) -> None:
        """Drop the gauges of an endpoint the router no longer routes to."""
        labels = (endpoint.model, endpoint.version, endpoint.label)
        for gauge in (self.endpoint_healthy, self.requests_outstanding):
            with contextlib.suppress(KeyError):
                gauge.remove(*labels)

    def attempt(self, endpoint: Observed, outcome: Outcome) -> None:
        """Count one attempt on ``endpoint`` and how it ended."""
        self.requests.labels(endpoint.model, endpoint.version, endpoint.label, outcome).inc()

    def retry(self, endpoint: Observed) -> None:
        """Count a further attempt of a request that failed before its first token."""
        self.retries.labels(endpoint.model, endpoint.version).inc()

    def cooldown(self, endpoint: Observed) -> None:
        """Count an endpoint put in cooldown."""
        self.cooldowns.labels(endpoint.model, endpoint.version, endpoint.label).inc()


_lock = threading.Lock()
_by_registry: dict[int, tuple[CollectorRegistry, RouterMetrics]] = {}


def router_metrics(registry: CollectorRegistry | None = None) -> RouterMetrics:
    """The router metrics registered on ``registry`` (the default one when ``None``).

    NOTE: Prometheus refuses a name registered twice, so the families are created
    once per registry and shared by every router using it (tests pass a registry
    of their own to read values without interference).
    """
    target = REGISTRY if registry is None else registry
    with _lock:
        known = _by_registry.get(id(target))
        if known is not None and known[0] is target:
            return known[1]
        metrics = _create(target)
        _by_registry[id(target)] = (target, metrics)
        return metrics


def _create(registry: CollectorRegistry) -> RouterMetrics:
    endpoint = ("model", "version", "endpoint")
    return RouterMetrics(
        endpoint_healthy=Gauge(
            "ragserve:router_endpoint_healthy",
            "1 when the endpoint takes traffic, 0 while it cools down or awaits a probe.",
            endpoint,
            registry=registry,
        ),
        requests_outstanding=Gauge(
            "ragserve:router_requests_outstanding",
            "Requests this node has running on the endpoint.",
            endpoint,
            registry=registry,
        ),
        requests=Counter(
            "ragserve:router_requests",
            "Attempts on an endpoint, by how they ended.",
            (*endpoint, "outcome"),
            registry=registry,
        ),
        retries=Counter(
            "ragserve:router_retries",
            "Further attempts of requests that failed before their first token.",
            ("model", "version"),
            registry=registry,
        ),
        cooldowns=Counter(
            "ragserve:router_endpoint_cooldowns",
            "Times an endpoint was put in cooldown.",
            endpoint,
            registry=registry,
        ),
    )
