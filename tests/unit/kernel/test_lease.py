"""Working under a lease: a cancelled caller returns only once the work has ended."""

from __future__ import annotations

import asyncio

import pytest

from app.batches.queue import BATCH_JOBS
from kernel.queue.lease import LeaseLostError, with_lease
from kernel.queue.memory import InProcessQueue


async def delivered(queue: InProcessQueue[str]) -> object:
    await queue.put("job-1")
    delivery = await queue.receive("worker-a", 1.0)
    assert delivery is not None
    return delivery


async def test_a_cancelled_caller_returns_after_the_work_has_unwound() -> None:
    """Guards against a stopped worker whose attempt still writes after ``stop``
    returned (its last write would land after a restarted worker's cleanup): the
    caller's cancellation reaches the work, and the caller waits for it to unwind."""
    queue: InProcessQueue[str] = InProcessQueue(BATCH_JOBS, claim_idle_s=60)
    delivery = await delivered(queue)
    events: list[str] = []
    started = asyncio.Event()

    async def work() -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            await asyncio.sleep(0.05)  # an in-flight write finishing
            events.append("work unwound")
            raise

    caller = asyncio.create_task(
        with_lease(queue, "worker-a", delivery, work(), renew_s=30)  # type: ignore[arg-type]
    )
    await started.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    events.append("caller ended")
    assert events == ["work unwound", "caller ended"]


async def test_a_lost_lease_cancels_the_work_and_says_so() -> None:
    queue: InProcessQueue[str] = InProcessQueue(BATCH_JOBS, claim_idle_s=60)
    delivery = await delivered(queue)
    await queue.ack(delivery)  # type: ignore[arg-type]  # the entry is gone: renewals fail
    ended = asyncio.Event()

    async def work() -> None:
        try:
            await asyncio.sleep(60)
        finally:
            ended.set()

    with pytest.raises(LeaseLostError):
        await with_lease(queue, "worker-a", delivery, work(), renew_s=0.01)  # type: ignore[arg-type]
    assert ended.is_set()


async def test_the_work_s_result_comes_back_and_renewals_stop() -> None:
    queue: InProcessQueue[str] = InProcessQueue(BATCH_JOBS, claim_idle_s=60)
    delivery = await delivered(queue)
    renewals = 0

    async def count() -> None:
        nonlocal renewals
        renewals += 1

    async def work() -> str:
        await asyncio.sleep(0.05)
        return "done"

    done = await with_lease(
        queue,
        "worker-a",
        delivery,  # type: ignore[arg-type]
        work(),
        renew_s=0.01,
        before_renew=count,
    )
    assert done == "done"
    assert renewals >= 1
    seen = renewals
    await asyncio.sleep(0.05)
    assert renewals == seen
