"""The fair share between tenants: batch lines handed round-robin (FairSlots), and
when a batch leaves a worker to another tenant's (BatchShares)."""

from __future__ import annotations

import asyncio

import pytest

from app.batches.fair import BatchShares, FairSlots


async def test_a_tenant_with_many_lines_waiting_takes_turns_with_one_with_few() -> None:
    slots = FairSlots(1)
    order: list[str] = []
    gate = asyncio.Event()

    async def line(tenant: str) -> None:
        async with slots.slot(tenant):
            order.append(tenant)
            await gate.wait()

    first = asyncio.create_task(line("busy"))
    await asyncio.sleep(0)
    waiting = [asyncio.create_task(line("busy")) for _ in range(4)]
    await asyncio.sleep(0)
    waiting += [asyncio.create_task(line("small")) for _ in range(2)]
    await asyncio.sleep(0)
    gate.set()
    await asyncio.gather(first, *waiting)
    # After the first, the two tenants alternate while both have lines waiting.
    assert order == ["busy", "busy", "small", "busy", "small", "busy", "busy"]
    assert slots.held == {}


async def test_no_more_lines_run_at_once_than_there_are_slots() -> None:
    slots = FairSlots(3)
    running = peak = 0

    async def line(tenant: str) -> None:
        nonlocal running, peak
        async with slots.slot(tenant):
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.001)
            running -= 1

    await asyncio.gather(*(line(f"t{n % 4}") for n in range(40)))
    assert peak == 3


async def test_a_cancelled_waiter_gives_up_its_turn_and_its_slot() -> None:
    slots = FairSlots(1)
    release = asyncio.Event()

    async def hold() -> None:
        async with slots.slot("a"):
            await release.wait()

    holder = asyncio.create_task(hold())
    await asyncio.sleep(0)
    doomed = asyncio.create_task(hold())
    await asyncio.sleep(0)
    doomed.cancel()
    release.set()
    await holder
    with pytest.raises(asyncio.CancelledError):
        await doomed
    # The slot came back: a new line runs at once.
    async with asyncio.timeout(1):
        async with slots.slot("b"):
            assert slots.held == {"b": 1}


def test_at_least_one_slot() -> None:
    with pytest.raises(ValueError, match="at least one"):
        FairSlots(0)


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_tenant_does_not_take_the_last_free_worker_for_a_second_batch() -> None:
    shares = BatchShares(workers=3, quantum_s=30, clock=_Clock())
    assert not shares.defers("a")  # a first batch always runs
    shares.take("a")
    assert not shares.defers("a")  # a second one leaves a worker free
    shares.take("a")
    assert shares.defers("a")  # a third would take the last one
    assert not shares.defers("b")  # another tenant's first batch takes it
    single = BatchShares(workers=1, quantum_s=30, clock=_Clock())
    single.take("a")
    assert single.defers("a")
    assert not single.defers("b")


def test_a_batch_gives_way_after_its_quantum_when_every_worker_is_taken() -> None:
    clock = _Clock()
    shares = BatchShares(workers=2, quantum_s=30, clock=clock)
    first = shares.take("a")
    clock.now = 40
    assert not shares.may_give_way(first)  # a worker is still free
    second = shares.take("a")
    assert not shares.may_give_way(second)  # it has not run its quantum
    assert shares.may_give_way(first)
    shares.give_way(first)
    clock.now = 80
    assert not shares.may_give_way(second)  # one gives way at a time
    shares.drop(first)
    third = shares.take("b")
    clock.now = 200
    # One batch each: either may give way to a third tenant.
    assert shares.may_give_way(second)
    assert shares.may_give_way(third)


def test_only_the_tenant_holding_the_most_gives_way() -> None:
    clock = _Clock()
    shares = BatchShares(workers=3, quantum_s=1, clock=clock)
    busy = [shares.take("busy"), shares.take("busy")]
    small = shares.take("small")
    clock.now = 5
    assert not shares.may_give_way(small)
    assert all(shares.may_give_way(hold) for hold in busy)
    for hold in busy:
        shares.drop(hold)
    assert shares.held == {"small": 1}
    shares.drop(small)
    assert not shares.held
