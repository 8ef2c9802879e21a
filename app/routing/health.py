"""Whether an endpoint takes traffic: passive failure counting, cooldown, active probes.

An endpoint is in one of three states:

- ``healthy``: it takes traffic.
- ``cooling``: ``failure_threshold`` failed requests within ``failure_window_s``
  (LiteLLM's defaults: 3 failures, a cooldown of seconds), or
  ``probe_failure_threshold`` failed probes in a row, put it here for
  ``cooldown_s``; it is neither chosen nor probed, so a struggling node is left to
  recover.
- ``probing``: the cooldown is over; the next successful probe (or a request that
  finishes cleanly, when the router fails open) makes it healthy again. A failed
  request starts a new cooldown; a failed probe only records its error, since the
  prober tries again one interval later anyway.

A request that finishes cleanly clears the failure count. Being overloaded (429/503
with ``Retry-After``) is not a failure: the node is alive and said when to come
back, so the balancer only prefers others until then (``busy_until``).

NOTE: two probe failures in a row, not one, cool a healthy endpoint down: one missed
probe can be a pause on a busy node, two at the default 2 s interval are a node
that has been gone for seconds, found without any real request failing on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

import structlog

if TYPE_CHECKING:
    from collections.abc import Iterable

    from inference.engine import Engine

__all__ = ["Health", "HealthPolicy", "Probed", "Prober", "State"]

log = structlog.get_logger(__name__)


class State(StrEnum):
    """Where an endpoint stands; only ``healthy`` ones are chosen first."""

    HEALTHY = "healthy"
    COOLING = "cooling"
    PROBING = "probing"


@dataclass(slots=True)
class Health:
    """The mutable health record of one endpoint (``HealthPolicy`` changes it).

    Attributes:
        state: As last set; ``HealthPolicy.state`` moves ``cooling`` on to ``probing``.
        failures: ``clock()`` times of the failed requests since the last clean one.
        cooldown_until: When a cooldown ends.
        last_failure_at: When a request or probe last failed (fail-open order).
        last_error: What the last failed request said.
        probe_failures: Failed probes in a row.
        last_probe_error: What the last probe said, ``None`` once one succeeds.
        busy_until: Until when the endpoint asked not to be sent more (overloaded).
    """

    state: State = State.HEALTHY
    failures: deque[float] = field(default_factory=deque)
    cooldown_until: float = 0.0
    last_failure_at: float | None = None
    last_error: str | None = None
    probe_failures: int = 0
    last_probe_error: str | None = None
    busy_until: float = 0.0


@dataclass(frozen=True, slots=True)
class HealthPolicy:
    """The thresholds, and the transitions of a ``Health`` record.

    Each method that records something returns the new state when it changed, so
    the caller can log and export the transition; ``None`` otherwise.
    """

    failure_threshold: int = 3
    failure_window_s: float = 30.0
    cooldown_s: float = 5.0
    probe_failure_threshold: int = 2
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        if self.failure_threshold < 1 or self.probe_failure_threshold < 1:
            raise ValueError("failure thresholds must be at least 1")
        if self.failure_window_s <= 0 or self.cooldown_s < 0:
            raise ValueError("the failure window must be positive, the cooldown not negative")

    def state(self, health: Health) -> State:
        """The current state; a finished cooldown becomes ``probing``."""
        if health.state is State.COOLING and self.clock() >= health.cooldown_until:
            health.state = State.PROBING
        return health.state

    def cooldown_remaining(self, health: Health) -> float:
        """Seconds left in the cooldown (0 outside one)."""
        if self.state(health) is not State.COOLING:
            return 0.0
        return max(0.0, health.cooldown_until - self.clock())

    def busy(self, health: Health) -> bool:
        """Whether the endpoint said it is overloaded and its ``Retry-After`` still runs."""
        return self.clock() < health.busy_until

    def failure(self, health: Health, error: str) -> State | None:
        """A request failed on the endpoint; a cooldown starts at the threshold."""
        now = self.clock()
        health.last_failure_at = now
        health.last_error = error
        health.failures.append(now)
        while health.failures and health.failures[0] <= now - self.failure_window_s:
            health.failures.popleft()
        current = self.state(health)
        if current is State.COOLING:
            # Tried while cooling (the router failed open) and failed again: wait on.
            health.cooldown_until = now + self.cooldown_s
            return None
        if current is State.PROBING or len(health.failures) >= self.failure_threshold:
            return self._cool(health, now)
        return None

    def success(self, health: Health) -> State | None:
        """A request finished cleanly: the failure count starts over."""
        health.failures.clear()
        return self._heal(health)

    def overloaded(self, health: Health, retry_after: float) -> None:
        """The endpoint refused for load; prefer others for ``retry_after`` seconds.

        NOTE: capped at the cooldown, so one large ``Retry-After`` cannot keep a
        node out of the preferred set for longer than a failure would.
        """
        until = self.clock() + max(0.0, min(retry_after, self.cooldown_s))
        health.busy_until = max(health.busy_until, until)

    def probe_ok(self, health: Health) -> State | None:
        """A health probe succeeded."""
        health.probe_failures = 0
        health.last_probe_error = None
        if self.state(health) is State.PROBING:
            health.failures.clear()
            return self._heal(health)
        return None

    def probe_failed(self, health: Health, error: str) -> State | None:
        """A health probe failed; enough in a row cool a healthy endpoint down."""
        now = self.clock()
        health.probe_failures += 1
        health.last_probe_error = error
        health.last_failure_at = now
        if (
            self.state(health) is State.HEALTHY
            and health.probe_failures >= self.probe_failure_threshold
        ):
            return self._cool(health, now)
        return None

    def _cool(self, health: Health, now: float) -> State:
        health.state = State.COOLING
        health.cooldown_until = now + self.cooldown_s
        health.failures.clear()
        return State.COOLING

    @staticmethod
    def _heal(health: Health) -> State | None:
        if health.state is State.HEALTHY:
            return None
        health.state = State.HEALTHY
        health.probe_failures = 0
        return State.HEALTHY


class Probed(Protocol):
    """What the prober needs of an endpoint (``app/routing/endpoints.py``'s ``Endpoint``)."""

    started: bool

    @property
    def engine(self) -> Engine: ...

    @property
    def health(self) -> Health: ...


T = TypeVar("T", bound=Probed)


class Prober(Generic[T]):
    """Probes endpoints every ``interval_s`` so a dead or revived node is noticed
    without real traffic.

    Every endpoint ``targets()`` yields is probed concurrently, each bounded by
    ``timeout_s``, except those cooling down. One that never started (its server was
    down when the router met it) is started first.
    """

    def __init__(
        self,
        targets: Callable[[], Iterable[T]],
        policy: HealthPolicy,
        on_transition: Callable[[T, State], None],
        *,
        interval_s: float = 2.0,
        timeout_s: float = 1.0,
    ) -> None:
        if interval_s <= 0 or timeout_s <= 0:
            raise ValueError("the probe interval and timeout must be positive")
        self._targets = targets
        self._policy = policy
        self._on_transition = on_transition
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start probing in the background; idempotent."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="router-prober")

    async def stop(self) -> None:
        """Stop probing and wait for the task to end."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def probe_all(self) -> None:
        """Probe every due endpoint once, concurrently."""
        due = [e for e in self._targets() if self._policy.state(e.health) is not State.COOLING]
        await asyncio.gather(*(self.probe(e) for e in due))

    async def probe(self, endpoint: T) -> None:
        """Probe one endpoint and record the outcome."""
        try:
            async with asyncio.timeout(self._timeout_s):
                if not endpoint.started:
                    await endpoint.engine.start()
                    endpoint.started = True
                await endpoint.engine.check_health()
        except Exception as exc:  # any failure of the probe marks it, whatever its type
            error = f"{exc.__class__.__name__}: {exc}" if str(exc) else exc.__class__.__name__
            if isinstance(exc, TimeoutError):
                error = f"no answer within {self._timeout_s:g} s"
            changed = self._policy.probe_failed(endpoint.health, error)
        else:
            changed = self._policy.probe_ok(endpoint.health)
        if changed is not None:
            self._on_transition(endpoint, changed)

    async def _run(self) -> None:
        while True:
            try:
                await self.probe_all()
            except Exception:  # a bug here must not end probing for good
                log.exception("router_probe_failed")
            await asyncio.sleep(self._interval_s)
