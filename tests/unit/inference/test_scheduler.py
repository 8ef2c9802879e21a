"""The batching engine's admission policy: bounds, fairness between tenants, budgets,
and the online/batch priority classes."""

from __future__ import annotations

import pytest

from inference.errors import EngineOverloadedError
from inference.fair_queue import Ticket
from inference.scheduler import Scheduler, plan_preemption, plan_prefill
from inference.types import Priority

BATCH = Priority.BATCH


def _ticket(
    key: str,
    tenant: str = "t",
    prompt: int = 10,
    kv: int = 20,
    deadline: float | None = None,
    priority: Priority = Priority.ONLINE,
) -> Ticket[str]:
    return Ticket(
        key=key,
        tenant=tenant,
        prompt_tokens=prompt,
        kv_tokens=kv,
        deadline=deadline,
        item=key,
        priority=priority,
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


# -- priority classes ----------------------------------------------------------


def test_batch_waits_while_an_online_request_waits() -> None:
    """Guards the class order: a batch ticket never takes a slot an online one waits for."""
    scheduler: Scheduler[str] = Scheduler(10, 1000)
    scheduler.submit(_ticket("b0", priority=BATCH))
    scheduler.submit(_ticket("o0"))
    scheduler.submit(_ticket("o1"))
    assert scheduler.admit(free_slots=1, free_kv_tokens=1000) == ["o0"]
    assert scheduler.admit(free_slots=3, free_kv_tokens=1000) == ["o1", "b0"]


def test_an_online_request_that_does_not_fit_still_holds_batch_back() -> None:
    """A small batch ticket would fit, but the big online head waits: batch waits too."""
    scheduler: Scheduler[str] = Scheduler(10, 1000)
    scheduler.submit(_ticket("big", kv=500))
    scheduler.submit(_ticket("b0", kv=10, priority=BATCH))
    assert scheduler.admit(free_slots=4, free_kv_tokens=100) == []
    head = scheduler.next_online()
    assert head is not None
    assert head.key == "big"
    assert scheduler.admit(free_slots=4, free_kv_tokens=600) == ["big", "b0"]
    assert scheduler.next_online() is None


def test_running_batch_is_capped_by_its_share() -> None:
    scheduler: Scheduler[str] = Scheduler(10, 1000)
    for i in range(5):
        scheduler.submit(_ticket(f"b{i}", priority=BATCH))
    scheduler.submit(_ticket("o0"))
    assert scheduler.admit(free_slots=8, free_kv_tokens=1000, batch_slots=2) == ["o0", "b0", "b1"]
    assert scheduler.admit(free_slots=8, free_kv_tokens=1000, batch_slots=0) == []
    assert scheduler.waiting(BATCH) == 3


def test_each_class_is_round_robin_over_its_own_tenants() -> None:
    scheduler: Scheduler[str] = Scheduler(100, 10_000)
    for i in range(3):
        scheduler.submit(_ticket(f"xb{i}", tenant="X", priority=BATCH))
        scheduler.submit(_ticket(f"ao{i}", tenant="A"))
    scheduler.submit(_ticket("yb0", tenant="Y", priority=BATCH))
    scheduler.submit(_ticket("bo0", tenant="B"))
    assert scheduler.admit(8, 10_000) == ["ao0", "bo0", "ao1", "ao2", "xb0", "yb0", "xb1", "xb2"]


def test_batch_tickets_never_get_an_online_request_refused() -> None:
    """Guards the separate bounds: a full batch queue leaves online admission untouched."""
    scheduler: Scheduler[str] = Scheduler(2, 100, max_waiting_batch=3, max_waiting_batch_tokens=30)
    for i in range(3):
        scheduler.submit(_ticket(f"b{i}", priority=BATCH))
    with pytest.raises(EngineOverloadedError):
        scheduler.submit(_ticket("b3", priority=BATCH))
    with pytest.raises(EngineOverloadedError):
        scheduler.check_room(priority=BATCH)
    scheduler.check_room()
    scheduler.submit(_ticket("o0", prompt=50))
    scheduler.submit(_ticket("o1", prompt=50))
    with pytest.raises(EngineOverloadedError):
        scheduler.submit(_ticket("o2", prompt=1))
    assert scheduler.num_waiting == 5
    assert scheduler.waiting_tokens == 130


def test_a_preempted_request_resumes_first_whatever_the_bounds() -> None:
    scheduler: Scheduler[str] = Scheduler(1, 100, max_waiting_batch=1)
    scheduler.submit(_ticket("b-new", tenant="X", priority=BATCH))
    scheduler.requeue(_ticket("b-old", tenant="Y", prompt=200, priority=BATCH))
    assert scheduler.waiting(BATCH) == 2
    assert scheduler.admit(4, 1000) == ["b-old", "b-new"]
    scheduler.submit(_ticket("x", priority=BATCH))
    with pytest.raises(ValueError, match="already waiting"):
        scheduler.requeue(_ticket("x", priority=BATCH))


def test_remove_expire_and_drain_cover_both_classes() -> None:
    scheduler: Scheduler[str] = Scheduler(10, 1000)
    scheduler.submit(_ticket("o", deadline=5.0))
    scheduler.submit(_ticket("b", deadline=5.0, priority=BATCH))
    scheduler.submit(_ticket("b2", priority=BATCH))
    scheduler.submit(_ticket("o2"))
    assert sorted(scheduler.pop_expired(now=5.0)) == ["b", "o"]
    assert scheduler.remove("b2") == "b2"
    assert "o2" in scheduler
    assert scheduler.drain() == ["o2"]


def test_preemption_takes_the_newest_batch_sequences_and_no_more_than_needed() -> None:
    # Running batch sequences reserve 10, 20, 30 KV tokens, oldest first.
    running = [10, 20, 30]
    assert plan_preemption(running, free_slots=0, free_kv_tokens=100, need_kv_tokens=25) == 1
    assert plan_preemption(running, free_slots=0, free_kv_tokens=0, need_kv_tokens=25) == 1
    assert plan_preemption(running, free_slots=0, free_kv_tokens=0, need_kv_tokens=45) == 2
    assert plan_preemption(running, free_slots=2, free_kv_tokens=0, need_kv_tokens=60) == 3


def test_no_preemption_when_it_fits_or_cannot_help() -> None:
    assert plan_preemption([10, 20], free_slots=1, free_kv_tokens=50, need_kv_tokens=50) == 0
    # Online sequences hold the rest of the KV room: preempting all batch is not enough.
    assert plan_preemption([10, 20], free_slots=0, free_kv_tokens=0, need_kv_tokens=31) == 0
    assert plan_preemption([], free_slots=0, free_kv_tokens=0, need_kv_tokens=1) == 0


def test_schedule_preempts_the_newest_batch_sequences_an_online_request_needs() -> None:
    """Guards the preemption order: newest first, no more than needed, and the
    victims resume first, in their original order, before older waiting batch work."""
    scheduler: Scheduler[str] = Scheduler(10, 1000)
    running = [_ticket(f"r{i}", kv=20, priority=BATCH) for i in range(3)]  # oldest first
    scheduler.submit(_ticket("b-waiting", priority=BATCH))
    scheduler.submit(_ticket("o0", kv=30))
    decided = scheduler.schedule(0, 0, batch_slots=0, running_batch=running)
    assert decided.preempted == ["r2", "r1"]
    assert decided.admitted == ["o0"]
    assert scheduler.admit(5, 1000) == ["r1", "r2", "b-waiting"]


def test_schedule_preempts_one_slot_per_waiting_online_request() -> None:
    scheduler: Scheduler[str] = Scheduler(10, 1000)
    running = [_ticket(f"r{i}", priority=BATCH) for i in range(3)]
    scheduler.submit(_ticket("o0", tenant="A"))
    scheduler.submit(_ticket("o1", tenant="B"))
    decided = scheduler.schedule(0, 1000, batch_slots=0, running_batch=running)
    assert (decided.admitted, decided.preempted) == (["o0", "o1"], ["r2", "r1"])


def test_schedule_preempts_nothing_when_it_cannot_help() -> None:
    """Online sequences hold the KV room: preempting every batch one would not fit it."""
    scheduler: Scheduler[str] = Scheduler(10, 1000)
    running = [_ticket("r0", kv=20, priority=BATCH)]
    scheduler.submit(_ticket("o0", kv=100))
    scheduler.submit(_ticket("b0", kv=1, priority=BATCH))
    decided = scheduler.schedule(2, 50, batch_slots=1, running_batch=running)
    assert (decided.admitted, decided.preempted) == ([], [])
    assert scheduler.waiting(BATCH) == 1
