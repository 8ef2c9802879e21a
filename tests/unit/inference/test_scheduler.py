"""The batching engine's admission policy: bounds, fairness between tenants, budgets."""

from __future__ import annotations

import pytest

from inference.errors import EngineOverloadedError
from inference.scheduler import Scheduler, Ticket, plan_prefill


def _ticket(
    key: str, tenant: str = "t", prompt: int = 10, kv: int = 20, deadline: float | None = None
) -> Ticket[str]:
    return Ticket(
        key=key, tenant=tenant, prompt_tokens=prompt, kv_tokens=kv, deadline=deadline, item=key
    )


def test_one_tenant_is_served_in_fifo_order() -> None:
    scheduler: Scheduler[str] = Scheduler(10, 1000)
    for key in "abc":
        scheduler.submit(_ticket(key))
    assert scheduler.admit(free_slots=2, free_kv_tokens=1000) == ["a", "b"]
    assert scheduler.admit(free_slots=2, free_kv_tokens=1000) == ["c"]
    assert scheduler.num_waiting == 0
    assert scheduler.waiting_tokens == 0


def test_a_flooding_tenant_cannot_starve_another() -> None:
    """Guards fairness: B's single request is admitted right after A's first, not last."""
    scheduler: Scheduler[str] = Scheduler(100, 10_000)
    for i in range(20):
        scheduler.submit(_ticket(f"a{i}", tenant="A"))
    scheduler.submit(_ticket("b0", tenant="B"))
    order = [scheduler.admit(1, 10_000)[0] for _ in range(4)]
    assert order == ["a0", "b0", "a1", "a2"]


def test_round_robin_interleaves_three_tenants() -> None:
    scheduler: Scheduler[str] = Scheduler(100, 10_000)
    for tenant in "ABC":
        for i in range(2):
            scheduler.submit(_ticket(f"{tenant}{i}", tenant=tenant))
    assert scheduler.admit(6, 10_000) == ["A0", "B0", "C0", "A1", "B1", "C1"]


def test_queue_is_bounded_by_requests() -> None:
    scheduler: Scheduler[str] = Scheduler(2, 1000)
    scheduler.submit(_ticket("a"))
    scheduler.submit(_ticket("b"))
    with pytest.raises(EngineOverloadedError) as info:
        scheduler.submit(_ticket("c"), retry_after=3.0)
    assert info.value.retry_after == 3.0
    assert scheduler.num_waiting == 2


def test_queue_is_bounded_by_prompt_tokens() -> None:
    scheduler: Scheduler[str] = Scheduler(100, 25)
    scheduler.submit(_ticket("a", prompt=20))
    with pytest.raises(EngineOverloadedError):
        scheduler.submit(_ticket("b", prompt=10))
    scheduler.submit(_ticket("c", prompt=5))
    assert scheduler.waiting_tokens == 25


def test_admission_respects_the_kv_budget_without_skipping_the_head() -> None:
    """A big head request blocks smaller ones behind it rather than starving for ever."""
    scheduler: Scheduler[str] = Scheduler(10, 1000)
    scheduler.submit(_ticket("small", tenant="A", kv=10))
    scheduler.submit(_ticket("big", tenant="B", kv=500))
    scheduler.submit(_ticket("small2", tenant="A", kv=10))
    assert scheduler.admit(free_slots=5, free_kv_tokens=100) == ["small"]
    assert scheduler.admit(free_slots=5, free_kv_tokens=100) == []
    assert scheduler.admit(free_slots=5, free_kv_tokens=600) == ["big", "small2"]


def test_remove_and_expire() -> None:
    scheduler: Scheduler[str] = Scheduler(10, 1000)
    scheduler.submit(_ticket("a", tenant="A"))
    scheduler.submit(_ticket("b", tenant="B", deadline=5.0))
    scheduler.submit(_ticket("c", tenant="B"))
    assert scheduler.remove("a") == "a"
    assert scheduler.remove("a") is None
    assert scheduler.pop_expired(now=4.0) == []
    assert scheduler.pop_expired(now=5.0) == ["b"]
    assert "c" in scheduler
    assert scheduler.drain() == ["c"]
    assert scheduler.num_waiting == 0


def test_plan_prefill_spends_the_budget_oldest_first() -> None:
    assert plan_prefill([300, 50, 10], budget=256) == [256, 0, 0]
    assert plan_prefill([44, 50, 10], budget=256) == [44, 50, 10]
    assert plan_prefill([200, 100], budget=256) == [200, 56]
    assert plan_prefill([], budget=256) == []
