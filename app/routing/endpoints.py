"""The servers of each model version as the router sees them, kept in step with
the registry.

An endpoint is an ``inference.Engine``: a ``RemoteEngine`` per URL for a ``remote``
version (built by an injected factory), the process's own engine for an
``embedded`` one. It is named by its version key and URL, which is all every API
node agrees on, so affinity hashing and metrics use the URL.

``EndpointPool.sync`` follows the registry: new (version, URL) pairs get an engine,
started at once (one that fails to start is kept, and the prober retries); unchanged
ones keep their health and load, and take a new weight in place; a change of the
upstream model or API key rebuilds the engine; removed ones leave routing at once
and their engines stop when their last request ends. The embedded engine is
routed, never started or stopped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import structlog

from app.routing.health import Health, HealthPolicy, State
from app.routing.specs import EMBEDDED_URL, EndpointSpec, VersionSpec
from inference.engine import Engine

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from app.routing.metrics import RouterMetrics

__all__ = ["Endpoint", "EndpointPool", "EndpointStatus", "EngineFactory", "display_url"]

log = structlog.get_logger(__name__)

EngineFactory = Callable[[VersionSpec, EndpointSpec], Engine]
"""Builds the engine of one endpoint of a ``remote`` version (a ``RemoteEngine``)."""


def display_url(url: str) -> str:
    """``url`` without credentials, query or fragment: safe in labels, logs and views."""
    if url == EMBEDDED_URL:
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


@dataclass(frozen=True, slots=True)
class EndpointStatus:
    """What ``/readyz`` and the admin view show of one endpoint.

    Attributes:
        url: The endpoint's URL without credentials.
        weight: Its share of traffic.
        state: ``healthy``, ``cooling`` or ``probing`` (``starting`` before its
            engine first started).
        healthy: Whether it takes traffic now.
        outstanding: Requests this node has running on it.
        failures: Failed requests since the last clean one (within the window).
        cooldown_remaining_s: Seconds left in a cooldown.
        last_error: What the last failed request said.
        last_probe_error: What the last failed probe said; ``None`` once one succeeds.
    """

    url: str
    weight: float
    state: str
    healthy: bool
    outstanding: int
    failures: int
    cooldown_remaining_s: float
    last_error: str | None
    last_probe_error: str | None


@dataclass(eq=False, slots=True)
class Endpoint:
    """One engine serving one version, with this node's view of its load and health.

    Attributes:
        model: The version's public model name.
        version: The version's name.
        url: The server's base URL, or ``EMBEDDED_URL``.
        weight: Its share of traffic; 0 drains it (never chosen).
        engine: What generates.
        owned: Whether the router created the engine and has still to stop it
            (never the embedded engine).
        config: The version settings the engine was built from; a change rebuilds it.
        started: Whether ``engine.start()`` succeeded (the prober retries it).
        outstanding: Requests this node has running on it now.
        retired: Dropped from routing; its engine stops when the last request ends.
    """

    model: str
    version: str
    url: str
    weight: float
    engine: Engine
    owned: bool
    config: tuple[str | None, ...] = ()
    started: bool = False
    outstanding: int = 0
    retired: bool = False
    health: Health = field(default_factory=Health)

    @property
    def key(self) -> str:
        """``model@version``, the version this endpoint serves."""
        return f"{self.model}@{self.version}"

    @property
    def local(self) -> bool:
        """The process's own engine: never cooled down, never probed."""
        return self.url == EMBEDDED_URL

    @property
    def label(self) -> str:
        """The endpoint as metrics and logs name it."""
        return display_url(self.url)

    @property
    def serving(self) -> bool:
        """Started and healthy as last recorded (``HealthPolicy.state`` is exact)."""
        return self.started and self.health.state is State.HEALTHY

    def status(self, policy: HealthPolicy) -> EndpointStatus:
        """A snapshot of the endpoint for readiness and the admin view."""
        state = policy.state(self.health)
        return EndpointStatus(
            url=self.label,
            weight=self.weight,
            state=str(state) if self.started else "starting",
            healthy=self.started and state is State.HEALTHY,
            outstanding=self.outstanding,
            failures=len(self.health.failures),
            cooldown_remaining_s=round(policy.cooldown_remaining(self.health), 3),
            last_error=self.health.last_error,
            last_probe_error=self.health.last_probe_error,
        )


class EndpointPool:
    """The endpoints of every routed version, by version key (``model@version``)."""

    def __init__(
        self,
        factory: EngineFactory,
        embedded: Engine | None,
        metrics: RouterMetrics,
        *,
        start_timeout_s: float = 10.0,
    ) -> None:
        self._factory = factory
        self._embedded = embedded
        self._metrics = metrics
        self._start_timeout_s = start_timeout_s
        self.versions: dict[str, list[Endpoint]] = {}
        self._lock = asyncio.Lock()
        self._stopping: set[asyncio.Task[None]] = set()
        self._warned: set[tuple[str, str]] = set()  # logged once, not at every sync

    def remote(self) -> Iterator[Endpoint]:
        """Every routed endpoint but the embedded one (what the prober probes)."""
        return (e for eps in self.versions.values() for e in eps if not e.local)

    async def sync(self, versions: Iterable[VersionSpec]) -> None:
        """Reconcile the endpoints with the registry's versions (see the module doc)."""
        async with self._lock:
            known = {(e.key, e.url): e for eps in self.versions.values() for e in eps}
            routed: dict[str, list[Endpoint]] = {}
            created: list[Endpoint] = []
            for version in versions:
                routed[version.key] = []
                for spec in self._specs(version):
                    endpoint = known.pop((version.key, spec.url), None)
                    if endpoint is not None and endpoint.config != _config(version):
                        known[(version.key, spec.url)] = endpoint  # retired below
                        endpoint = None
                    if endpoint is None:
                        endpoint = self._create(version, spec)
                        if endpoint is None:
                            continue
                        created.append(endpoint)
                    endpoint.weight = spec.weight
                    routed[version.key].append(endpoint)
            await asyncio.gather(*(self._start(e) for e in created if not e.started))
            self.versions = routed
            for endpoints in routed.values():
                for endpoint in endpoints:
                    self._metrics.track(endpoint)
            for endpoint in known.values():
                log.info("router_endpoint_removed", version=endpoint.key, endpoint=endpoint.label)
                endpoint.retired = True
                self._metrics.forget(endpoint)
            # Idle ones stop now; busy ones when their last request ends (``released``).
            await asyncio.gather(*(self._stop(e) for e in known.values() if not e.outstanding))

    async def stop(self) -> None:
        """Drop every endpoint and stop the engines the pool created."""
        async with self._lock:
            endpoints = [e for eps in self.versions.values() for e in eps]
            self.versions = {}
        for endpoint in endpoints:
            endpoint.retired = True
            self._metrics.forget(endpoint)
        await asyncio.gather(*(self._stop(e) for e in endpoints))
        await asyncio.gather(*list(self._stopping))

    def released(self, endpoint: Endpoint) -> None:
        """A request on ``endpoint`` ended: export its load, or stop it once retired."""
        if not endpoint.retired:
            self._metrics.track(endpoint)
        elif endpoint.outstanding == 0 and endpoint.owned:
            task = asyncio.create_task(self._stop(endpoint))
            self._stopping.add(task)
            task.add_done_callback(self._stopping.discard)

    def _specs(self, version: VersionSpec) -> list[EndpointSpec]:
        if version.backend != "embedded":
            return list({s.url: s for s in version.endpoints}.values())
        if self._embedded is None:
            if (version.key, EMBEDDED_URL) not in self._warned:
                self._warned.add((version.key, EMBEDDED_URL))
                log.warning("router_no_embedded_engine", version=version.key)
            return []
        return [EndpointSpec(EMBEDDED_URL)]

    def _create(self, version: VersionSpec, spec: EndpointSpec) -> Endpoint | None:
        if version.backend == "embedded" and self._embedded is not None:
            engine, owned = self._embedded, False
        else:
            try:
                engine, owned = self._factory(version, spec), True
            except Exception:
                if (version.key, spec.url) not in self._warned:
                    self._warned.add((version.key, spec.url))
                    log.exception("router_endpoint_invalid", version=version.key, url=spec.url)
                return None
        endpoint = Endpoint(
            model=version.model,
            version=version.version,
            url=spec.url,
            weight=spec.weight,
            engine=engine,
            owned=owned,
            config=_config(version),
            started=not owned,
        )
        log.info("router_endpoint_added", version=version.key, endpoint=endpoint.label)
        return endpoint

    async def _start(self, endpoint: Endpoint) -> None:
        try:
            async with asyncio.timeout(self._start_timeout_s):
                await endpoint.engine.start()
            endpoint.started = True
        except Exception as exc:  # the prober retries the start
            error = f"{exc.__class__.__name__}: {exc}"
            if isinstance(exc, TimeoutError):
                error = f"no answer within {self._start_timeout_s:g} s"
            endpoint.health.state = State.PROBING
            endpoint.health.last_probe_error = f"start failed: {error}"
            log.warning("router_endpoint_start_failed", endpoint=endpoint.label, error=error)

    async def _stop(self, endpoint: Endpoint) -> None:
        if not endpoint.owned:
            return
        endpoint.owned = False  # stop once, whoever gets here first
        try:
            await endpoint.engine.stop()
        except Exception:
            log.exception("router_endpoint_stop_failed", endpoint=endpoint.label)


def _config(version: VersionSpec) -> tuple[str | None, ...]:
    """What a remote engine is built from besides its URL; a change rebuilds it."""
    if version.backend == "embedded":
        return ()
    return (version.upstream_model, version.api_key_name)
