"""The router: streams a request from one of a model version's endpoints.

- **Choosing**: ``app/routing/balancer.py`` (health first, affinity, least
  outstanding, failing open when nothing is healthy).
- **Health**: ``app/routing/health.py`` (passive failure counting, cooldown, probes).
- **Retrying.** A request that fails before its first token (``EngineUnavailableError``,
  ``EngineOverloadedError``, or a stream that ends in an error before any token) is
  tried on another endpoint, never on one it already tried, at most
  ``max_attempts`` times and never once its deadline has passed. When it runs out,
  the client gets 429 with the smallest ``Retry-After`` if any endpoint said it was
  overloaded (a later retry may well succeed), else the last unavailability (503).
  ``InvalidRequestError`` is the request's fault and is not retried. After the
  first token nothing is retried: an error ends the stream as the engine reports
  it, and counts against the endpoint.
- **Which endpoint answered.** ``generate`` returns a ``RoutedStream``, an async
  generator whose ``endpoint`` is the URL that answered (or was last tried);
  ``endpoint_of(request_id)`` says the same while the request runs.
- **Closing** the stream early closes the endpoint's stream, which aborts the
  request upstream and frees its slot.
- **Reconciling**: ``sync`` hands the registry's versions to the ``EndpointPool``
  (``app/routing/endpoints.py``).
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Callable, Coroutine, Iterable
from contextlib import aclosing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from app.routing.balancer import DEFAULT_AFFINITY_SLACK, Balancer
from app.routing.endpoints import Endpoint, EndpointPool
from app.routing.health import HealthPolicy, Prober, State
from app.routing.metrics import Outcome, router_metrics
from inference.errors import EngineOverloadedError, EngineUnavailableError, InvalidRequestError
from inference.types import FinishEvent, FinishReason, GenerationEvent, Priority, TokenEvent

if TYPE_CHECKING:
    import random

    from prometheus_client import CollectorRegistry

    from app.routing.endpoints import EndpointStatus, EngineFactory
    from app.routing.specs import VersionSpec
    from inference.engine import Engine
    from inference.types import GenerationRequest

__all__ = ["RoutedStream", "Router"]

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class _Flight:
    """A request in progress: where it runs, and whether it was aborted."""

    endpoint: Endpoint | None = None
    attempts: int = 0
    aborted: bool = False


class RoutedStream(AsyncGenerator[GenerationEvent, None]):
    """The events of one routed request, and the endpoint that answered it."""

    def __init__(self, flight: _Flight, events: AsyncGenerator[GenerationEvent, None]) -> None:
        self._flight = flight
        self._events = events

    @property
    def endpoint(self) -> str | None:
        """The URL (without credentials) that answered, or was last tried."""
        return None if self._flight.endpoint is None else self._flight.endpoint.label

    @property
    def attempts(self) -> int:
        """Endpoints tried so far (1 unless a retry happened)."""
        return self._flight.attempts

    def asend(self, value: None) -> Coroutine[Any, Any, GenerationEvent]:
        return self._events.asend(value)

    def athrow(
        self, typ: Any, val: Any = None, tb: Any = None
    ) -> Coroutine[Any, Any, GenerationEvent]:
        if val is None and tb is None:
            return self._events.athrow(typ)
        return self._events.athrow(typ, val, tb)

    def aclose(self) -> Coroutine[Any, Any, None]:
        return self._events.aclose()


class Router:
    """Balances requests over the endpoints of each model version, with health checks."""

    def __init__(
        self,
        engine_factory: EngineFactory,
        *,
        embedded: Engine | None = None,
        failure_threshold: int = 3,
        failure_window_s: float = 30.0,
        cooldown_s: float = 5.0,
        probe_interval_s: float = 2.0,
        probe_timeout_s: float = 1.0,
        probe_failure_threshold: int = 2,
        start_timeout_s: float = 10.0,
        max_attempts: int = 3,
        affinity_slack: float = DEFAULT_AFFINITY_SLACK,
        rng: random.Random | None = None,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Args:
        engine_factory: Builds the engine of a remote endpoint.
        embedded: This process's engine, for ``embedded`` versions.
        failure_threshold: Failed requests within ``failure_window_s`` that cool
            an endpoint down.
        failure_window_s: See ``failure_threshold``.
        cooldown_s: How long a cooled-down endpoint gets no traffic and no probe.
        probe_interval_s: Time between two rounds of health probes.
        probe_timeout_s: How long one probe may take.
        probe_failure_threshold: Failed probes in a row that cool an endpoint down.
        start_timeout_s: How long ``sync`` waits for a new engine to start.
        max_attempts: Endpoints one request may try before its first token.
        affinity_slack: See ``app/routing/balancer.py``.
        rng: Tie-breaking draws (seed one in tests).
        registry: Where the metrics live (the default registry when ``None``).
        clock: Health's time source (deadlines always use ``time.monotonic``).
        """
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.policy = HealthPolicy(
            failure_threshold=failure_threshold,
            failure_window_s=failure_window_s,
            cooldown_s=cooldown_s,
            probe_failure_threshold=probe_failure_threshold,
            clock=clock,
        )
        self._balancer = Balancer(affinity_slack, rng)
        self._metrics = router_metrics(registry)
        self._max_attempts = max_attempts
        self._pool = EndpointPool(
            engine_factory, embedded, self._metrics, start_timeout_s=start_timeout_s
        )
        self._flights: dict[str, _Flight] = {}
        self.prober = Prober(
            self._pool.remote,
            self.policy,
            self._transition,
            interval_s=probe_interval_s,
            timeout_s=probe_timeout_s,
        )

    async def start(self) -> None:
        """Start the health prober."""
        await self.prober.start()

    async def stop(self) -> None:
        """Stop the prober and every engine the router created."""
        await self.prober.stop()
        await self._pool.stop()

    async def sync(self, versions: Iterable[VersionSpec]) -> None:
        """Follow the registry: route exactly ``versions`` (see ``EndpointPool.sync``)."""
        await self._pool.sync(versions)

    def generate(
        self, version: VersionSpec, request: GenerationRequest, *, affinity_key: str | None = None
    ) -> RoutedStream:
        """Stream ``request`` from an endpoint of ``version``.

        Args:
            version: The version to answer.
            request: What to generate; its ``request_id`` is what ``abort`` takes.
            affinity_key: The conversation, whose turns should reach the same node.

        Raises (on the first ``__anext__``):
            EngineOverloadedError: Every endpoint tried was overloaded.
            EngineUnavailableError: The version has no endpoint that could answer.
            InvalidRequestError: The endpoint refused the request itself.
        """
        flight = _Flight()
        return RoutedStream(flight, self._run(version, request, affinity_key, flight))

    def endpoint_of(self, request_id: str) -> str | None:
        """The URL running ``request_id`` now, or ``None`` when none does."""
        flight = self._flights.get(request_id)
        return None if flight is None or flight.endpoint is None else flight.endpoint.label

    async def abort(self, request_id: str) -> None:
        """Stop a running request wherever it runs; unknown ids are ignored."""
        flight = self._flights.get(request_id)
        if flight is None:
            return
        flight.aborted = True
        if flight.endpoint is not None:
            await flight.endpoint.engine.abort(request_id)

    def check_capacity(self, version: VersionSpec, priority: Priority = Priority.ONLINE) -> None:
        """Raise ``EngineOverloadedError`` when every healthy endpoint would refuse a
        request of ``priority`` now.

        An endpoint refuses when its engine's own check says so (the embedded
        engine) or when it answered "overloaded" and its ``Retry-After`` still runs;
        the router does not guess at a remote server's queue otherwise.

        Raises:
            EngineOverloadedError: With the shortest wait any endpoint asked for.
            EngineUnavailableError: The version is not routed by this node.
        """
        waits: list[float] = []
        now = self.policy.clock()
        for endpoint in self._candidates(version, ()):
            if self.policy.state(endpoint.health) is not State.HEALTHY:
                continue
            if self.policy.busy(endpoint.health):
                waits.append(endpoint.health.busy_until - now)
                continue
            try:
                endpoint.engine.check_capacity(priority)
            except EngineOverloadedError as exc:
                waits.append(exc.retry_after)
                continue
            return
        if waits:
            raise EngineOverloadedError(
                f"every endpoint of {version.key} is overloaded", retry_after=min(waits)
            )

    def health(self, version: VersionSpec) -> list[EndpointStatus]:
        """The status of each endpoint of ``version`` (empty when none is routed)."""
        return [e.status(self.policy) for e in self._pool.versions.get(version.key, ())]

    def snapshot(self) -> dict[str, list[EndpointStatus]]:
        """The status of every routed endpoint, by version key (``model@version``)."""
        return {
            key: [e.status(self.policy) for e in eps] for key, eps in self._pool.versions.items()
        }

    def engine_for(self, version: VersionSpec) -> Engine:
        """An engine of ``version`` for tokenizer questions (a healthy one first).

        Raises:
            EngineUnavailableError: The version has no started endpoint.
        """
        started = [e for e in self._pool.versions.get(version.key, ()) if e.started]
        healthy = [e for e in started if self.policy.state(e.health) is State.HEALTHY]
        if not started:
            raise EngineUnavailableError(f"no endpoint of {version.key} is up")
        return (healthy or started)[0].engine

    def count_tokens(self, version: VersionSpec, text: str) -> int:
        """Tokens of ``text`` as an endpoint of ``version`` counts them."""
        return self.engine_for(version).count_tokens(text)

    async def _run(
        self,
        version: VersionSpec,
        request: GenerationRequest,
        affinity_key: str | None,
        flight: _Flight,
    ) -> AsyncGenerator[GenerationEvent, None]:
        self._flights[request.request_id] = flight
        tried: list[Endpoint] = []
        overloaded: list[EngineOverloadedError] = []
        unavailable: EngineUnavailableError | None = None
        try:
            while not flight.aborted:
                endpoint = self._choose(version, affinity_key, tried)
                if endpoint is None:
                    break
                if tried:
                    self._metrics.retry(endpoint)
                tried.append(endpoint)
                flight.endpoint, flight.attempts = endpoint, len(tried)
                streamed = False
                try:
                    async with aclosing(self._attempt(endpoint, request)) as events:
                        async for event in events:
                            streamed = True
                            yield event
                    return
                except EngineOverloadedError as exc:
                    if streamed:
                        raise
                    overloaded.append(exc)
                except EngineUnavailableError as exc:
                    if streamed:
                        raise
                    unavailable = exc
                if len(tried) >= self._max_attempts or _expired(request):
                    break
            if flight.aborted:
                yield FinishEvent(FinishReason.CANCELLED, len(request.prompt_token_ids), 0)
                return
            if overloaded:
                raise min(overloaded, key=lambda e: e.retry_after)
            if unavailable is not None:
                raise unavailable
            raise EngineUnavailableError(f"no endpoint of {version.key} can serve now")
        finally:
            if self._flights.get(request.request_id) is flight:
                del self._flights[request.request_id]

    async def _attempt(
        self, endpoint: Endpoint, request: GenerationRequest
    ) -> AsyncGenerator[GenerationEvent, None]:
        """One try on ``endpoint``: its events, with its load, health and metrics kept."""
        endpoint.outstanding += 1
        self._metrics.track(endpoint)
        outcome: Outcome = "cancelled"  # unless the stream ends otherwise
        streamed = False
        try:
            async with aclosing(endpoint.engine.generate(request)) as events:
                async for event in events:
                    if isinstance(event, TokenEvent):
                        streamed = True
                    elif event.reason is FinishReason.ERROR:
                        if not streamed:
                            # Nothing reached the client: as good as a refusal, so retry.
                            raise EngineUnavailableError(event.error or "the stream failed")
                        outcome = "error"
                        self._failed(endpoint, event.error or "the stream failed")
                    elif event.reason is not FinishReason.CANCELLED:
                        outcome = "ok"
                        self._succeeded(endpoint)
                    yield event
        except EngineOverloadedError as exc:
            outcome = "overloaded"
            if not endpoint.local:
                self.policy.overloaded(endpoint.health, exc.retry_after)
            raise
        except EngineUnavailableError as exc:
            outcome = "unavailable"
            self._failed(endpoint, str(exc) or exc.__class__.__name__)
            raise
        except InvalidRequestError:
            outcome = "invalid"
            raise
        except Exception as exc:  # outside the engine contract: count it, never retry it
            outcome = "error"
            self._failed(endpoint, f"{exc.__class__.__name__}: {exc}")
            raise
        finally:
            endpoint.outstanding -= 1
            self._metrics.attempt(endpoint, outcome)
            self._pool.released(endpoint)

    def _candidates(self, version: VersionSpec, tried: Iterable[Endpoint]) -> list[Endpoint]:
        endpoints = self._pool.versions.get(version.key)
        if endpoints is None:
            raise EngineUnavailableError(f"{version.key} is not served by this node")
        skip = set(tried)
        return [e for e in endpoints if e.started and e.weight > 0 and e not in skip]

    def _choose(
        self, version: VersionSpec, affinity_key: str | None, tried: list[Endpoint]
    ) -> Endpoint | None:
        return self._balancer.choose(self._candidates(version, tried), self.policy, affinity_key)

    def _succeeded(self, endpoint: Endpoint) -> None:
        changed = self.policy.success(endpoint.health)
        if changed is not None:
            self._transition(endpoint, changed)

    def _failed(self, endpoint: Endpoint, error: str) -> None:
        if endpoint.local:  # the process's own engine: nowhere better to send it
            endpoint.health.last_error = error
            return
        changed = self.policy.failure(endpoint.health, error)
        if changed is not None:
            self._transition(endpoint, changed)

    def _transition(self, endpoint: Endpoint, state: State) -> None:
        log.info(
            "router_endpoint_state",
            version=endpoint.key,
            endpoint=endpoint.label,
            state=str(state),
            error=endpoint.health.last_error or endpoint.health.last_probe_error,
        )
        if endpoint.retired:
            return
        self._metrics.track(endpoint)
        if state is State.COOLING:
            self._metrics.cooldown(endpoint)


def _expired(request: GenerationRequest) -> bool:
    return request.deadline is not None and time.monotonic() >= request.deadline
