"""The fair share of batch lines: slots handed round-robin between tenants."""

from __future__ import annotations

import asyncio

import pytest

from app.batches.fair import FairSlots


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
