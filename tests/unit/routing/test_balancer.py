"""The balancer: weighted least outstanding, rendezvous affinity with slack, health tiers."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from app.routing.balancer import Balancer, least_loaded, rendezvous
from app.routing.endpoints import Endpoint
from app.routing.health import HealthPolicy, State
from tests.unit.routing.fakes import Clock, FakeEngine


def endpoint(url: str, weight: float = 1.0, outstanding: int = 0) -> Endpoint:
    return Endpoint(
        model="m",
        version="v1",
        url=url,
        weight=weight,
        engine=FakeEngine(url),
        owned=True,
        started=True,
        outstanding=outstanding,
    )


def test_least_loaded_compares_outstanding_per_weight() -> None:
    rng = random.Random(0)
    small = endpoint("http://a", weight=1, outstanding=3)
    big = endpoint("http://b", weight=4, outstanding=8)  # 2 per unit of weight
    assert least_loaded([small, big], rng) is big
    big.outstanding = 13  # 3.25 per unit
    assert least_loaded([small, big], rng) is small


def test_concurrent_requests_spread_in_proportion_to_weight() -> None:
    balancer = Balancer(rng=random.Random(1))
    a, b = endpoint("http://a", weight=3), endpoint("http://b", weight=1)
    for _ in range(40):
        balancer.pick([a, b]).outstanding += 1  # none finishes
    assert (a.outstanding, b.outstanding) == (30, 10)


def test_idle_endpoints_share_sequential_traffic_by_weight() -> None:
    """Requests that never overlap tie at zero load; the draw still follows the weights."""
    balancer = Balancer(rng=random.Random(2))
    a, b = endpoint("http://a", weight=3), endpoint("http://b", weight=1)
    picks = Counter(balancer.pick([a, b]).url for _ in range(4000))
    assert picks["http://a"] / 4000 == pytest.approx(0.75, abs=0.03)


def test_equal_idle_endpoints_both_get_traffic() -> None:
    balancer = Balancer(rng=random.Random(3))
    a, b = endpoint("http://a"), endpoint("http://b")
    picks = Counter(balancer.pick([a, b]).url for _ in range(200))
    assert picks["http://a"] > 60
    assert picks["http://b"] > 60


def test_affinity_is_the_same_for_every_balancer_and_order() -> None:
    """Two API nodes (two balancers with their own draws) agree with no shared state."""
    one, two = Balancer(rng=random.Random(4)), Balancer(rng=random.Random(5))
    urls = ["http://a", "http://b", "http://c"]
    for n in range(100):
        key = f"conversation-{n}"
        first = one.pick([endpoint(u) for u in urls], key)
        second = two.pick([endpoint(u) for u in reversed(urls)], key)
        assert first.url == second.url


def test_affinity_spreads_conversations_by_weight() -> None:
    endpoints = [endpoint("http://a"), endpoint("http://b"), endpoint("http://c", weight=2)]
    owners = Counter(rendezvous(f"k{n}", endpoints).url for n in range(4000))
    assert owners["http://c"] / 4000 == pytest.approx(0.5, abs=0.03)
    assert owners["http://a"] / 4000 == pytest.approx(0.25, abs=0.03)


def test_losing_an_endpoint_moves_only_its_conversations() -> None:
    everyone = [endpoint("http://a"), endpoint("http://b"), endpoint("http://c")]
    without_c = everyone[:2]
    for n in range(500):
        key = f"k{n}"
        owner = rendezvous(key, everyone)
        if owner.url != "http://c":
            assert rendezvous(key, without_c) is owner


def test_affinity_holds_within_the_slack_then_load_wins() -> None:
    balancer = Balancer(affinity_slack=4, rng=random.Random(6))
    a, b = endpoint("http://a"), endpoint("http://b")
    key = next(f"k{n}" for n in range(100) if rendezvous(f"k{n}", [a, b]) is a)
    a.outstanding, b.outstanding = 6, 2
    assert balancer.pick([a, b], key) is a  # 4 above the least loaded: still its node
    a.outstanding = 7
    assert balancer.pick([a, b], key) is b


def test_weight_zero_drains_an_endpoint() -> None:
    balancer = Balancer(rng=random.Random(7))
    a, drained = endpoint("http://a"), endpoint("http://b", weight=0)
    assert {balancer.pick([a, drained], f"k{n}").url for n in range(50)} == {"http://a"}
    with pytest.raises(ValueError, match="positive weight"):
        balancer.pick([drained])


def test_negative_slack_is_refused() -> None:
    with pytest.raises(ValueError, match="affinity_slack"):
        Balancer(affinity_slack=-1)


def test_choose_prefers_healthy_endpoints_that_are_not_busy() -> None:
    clock = Clock()
    policy = HealthPolicy(clock=clock)
    balancer = Balancer(rng=random.Random(8))
    busy, cooling, ready = endpoint("http://a"), endpoint("http://b"), endpoint("http://c")
    policy.overloaded(busy.health, retry_after=2.0)
    for _ in range(3):
        policy.failure(cooling.health, "refused")
    assert balancer.choose([busy, cooling, ready], policy, None) is ready
    assert balancer.choose([busy, cooling], policy, None) is busy
    clock.now += 2.0
    assert not policy.busy(busy.health)


def test_choose_fails_open_to_the_least_recently_failed() -> None:
    clock = Clock()
    policy = HealthPolicy(clock=clock)
    balancer = Balancer(rng=random.Random(9))
    older, newer = endpoint("http://a"), endpoint("http://b")
    for e in (older, newer):
        for _ in range(3):
            policy.failure(e.health, "refused")
        clock.now += 1
    assert policy.state(older.health) is State.COOLING
    assert balancer.choose([newer, older], policy, "k") is older
    assert balancer.choose([], policy, "k") is None
