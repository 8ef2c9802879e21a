"""Endpoint health: failures in a window, cooldown, probing back, and the active prober."""

from __future__ import annotations

import asyncio

import pytest

from app.routing.endpoints import Endpoint
from app.routing.health import Health, HealthPolicy, Prober, State
from tests.unit.routing.fakes import Clock, FakeEngine


def endpoint(url: str = "http://a", started: bool = True) -> Endpoint:
    return Endpoint(
        model="m", version="v1", url=url, weight=1.0, engine=FakeEngine(url), owned=True,
        started=started,
    )  # fmt: skip


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def policy(clock: Clock) -> HealthPolicy:
    return HealthPolicy(failure_threshold=3, failure_window_s=30, cooldown_s=5, clock=clock)


def test_three_failures_in_the_window_cool_an_endpoint_down(
    policy: HealthPolicy, clock: Clock
) -> None:
    health = Health()
    assert policy.failure(health, "refused") is None
    assert policy.failure(health, "refused") is None
    assert policy.state(health) is State.HEALTHY
    assert policy.failure(health, "refused") is State.COOLING
    assert policy.cooldown_remaining(health) == 5
    clock.now += 2
    assert policy.cooldown_remaining(health) == 3


def test_failures_older_than_the_window_do_not_count(policy: HealthPolicy, clock: Clock) -> None:
    health = Health()
    for _ in range(5):
        policy.failure(health, "refused")
        clock.now += 16  # two fit in any 30 s window, never three
        assert policy.state(health) is State.HEALTHY


def test_a_clean_request_starts_the_count_over(policy: HealthPolicy) -> None:
    health = Health()
    policy.failure(health, "refused")
    policy.failure(health, "refused")
    assert policy.success(health) is None
    assert policy.failure(health, "refused") is None
    assert len(health.failures) == 1


def test_after_the_cooldown_a_probe_must_succeed(policy: HealthPolicy, clock: Clock) -> None:
    health = Health()
    for _ in range(3):
        policy.failure(health, "refused")
    clock.now += 5
    assert policy.state(health) is State.PROBING
    assert policy.probe_failed(health, "down") is None  # probing goes on, no new cooldown
    assert health.last_probe_error == "down"
    assert policy.probe_ok(health) is State.HEALTHY
    assert health.last_probe_error is None


def test_a_failure_while_probing_cools_down_again(policy: HealthPolicy, clock: Clock) -> None:
    health = Health()
    for _ in range(3):
        policy.failure(health, "refused")
    clock.now += 6
    assert policy.failure(health, "refused again") is State.COOLING
    assert policy.cooldown_remaining(health) == 5


def test_a_failure_while_cooling_extends_the_cooldown(policy: HealthPolicy, clock: Clock) -> None:
    health = Health()
    for _ in range(3):
        policy.failure(health, "refused")
    clock.now += 4
    assert policy.failure(health, "tried anyway") is None
    assert policy.cooldown_remaining(health) == 5


def test_two_failed_probes_in_a_row_cool_a_healthy_endpoint(policy: HealthPolicy) -> None:
    health = Health()
    assert policy.probe_failed(health, "down") is None
    assert policy.probe_ok(health) is None  # the streak is broken
    assert policy.probe_failed(health, "down") is None
    assert policy.probe_failed(health, "down") is State.COOLING


def test_overloaded_is_not_a_failure_but_a_short_wait(policy: HealthPolicy, clock: Clock) -> None:
    health = Health()
    policy.overloaded(health, retry_after=2)
    assert policy.state(health) is State.HEALTHY
    assert policy.busy(health)
    clock.now += 2
    assert not policy.busy(health)
    policy.overloaded(health, retry_after=3600)  # capped at the cooldown
    clock.now += 5
    assert not policy.busy(health)


@pytest.mark.parametrize(
    "kwargs",
    [{"failure_threshold": 0}, {"probe_failure_threshold": 0}, {"failure_window_s": 0}],
)
def test_nonsense_thresholds_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must"):
        HealthPolicy(**kwargs)  # type: ignore[arg-type]


async def test_the_prober_finds_a_dead_endpoint_without_traffic(
    policy: HealthPolicy, clock: Clock
) -> None:
    alive, dead = endpoint("http://a"), endpoint("http://b")
    assert isinstance(dead.engine, FakeEngine)
    dead.engine.healthy = False
    seen: list[tuple[str, State]] = []
    prober = Prober(
        lambda: [alive, dead], policy, lambda e, s: seen.append((e.url, s)), timeout_s=0.5
    )
    await prober.probe_all()
    assert seen == []
    assert dead.health.last_probe_error == "EngineUnavailableError: http://b is down"
    await prober.probe_all()
    assert seen == [("http://b", State.COOLING)]
    dead.engine.healthy = True
    await prober.probe_all()  # cooling: not probed yet
    assert policy.state(dead.health) is State.COOLING
    clock.now += 5
    await prober.probe_all()
    assert seen[-1] == ("http://b", State.HEALTHY)
    assert policy.state(alive.health) is State.HEALTHY


async def test_the_prober_starts_an_endpoint_that_never_started(policy: HealthPolicy) -> None:
    late = endpoint(started=False)
    late.health.state = State.PROBING
    prober = Prober(lambda: [late], policy, lambda e, s: None, timeout_s=0.5)
    await prober.probe_all()
    assert late.started
    assert policy.state(late.health) is State.HEALTHY


async def test_a_probe_that_hangs_fails_after_its_timeout(policy: HealthPolicy) -> None:
    class Hanging(FakeEngine):
        async def check_health(self) -> None:
            await asyncio.sleep(10)

    stuck = endpoint()
    stuck.engine = Hanging("http://a")
    prober = Prober(lambda: [stuck], policy, lambda e, s: None, timeout_s=0.02)
    await prober.probe_all()
    assert stuck.health.last_probe_error == "no answer within 0.02 s"


async def test_the_prober_task_probes_every_interval() -> None:
    policy = HealthPolicy(cooldown_s=60)
    dead = endpoint()
    assert isinstance(dead.engine, FakeEngine)
    dead.engine.healthy = False
    cooled = asyncio.Event()
    prober = Prober(
        lambda: [dead], policy, lambda e, s: cooled.set(), interval_s=0.005, timeout_s=0.5
    )
    await prober.start()
    try:
        await asyncio.wait_for(cooled.wait(), timeout=2)
    finally:
        await prober.stop()
    assert policy.state(dead.health) is State.COOLING
    await prober.stop()  # idempotent


def test_the_prober_refuses_a_zero_interval(policy: HealthPolicy) -> None:
    with pytest.raises(ValueError, match="positive"):
        Prober(list, policy, lambda e, s: None, interval_s=0)
