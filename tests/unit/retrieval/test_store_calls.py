"""``StoreCalls``: vector store work runs on bounded threads, and excess is refused, not queued."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from app.core.errors import classify
from retrieval.errors import VectorStoreOverloadedError
from retrieval.vector_store import StoreCalls


async def test_searches_beyond_threads_plus_waiting_are_refused_with_retry_after() -> None:
    calls = StoreCalls(threads=1, max_waiting=1, retry_after_s=2.0)
    release = threading.Event()
    running = [asyncio.create_task(calls.read(release.wait, 5)) for _ in range(2)]
    await asyncio.sleep(0.05)
    assert calls.in_flight == 2
    with pytest.raises(VectorStoreOverloadedError) as refused:
        await calls.read(time.sleep, 0)
    assert refused.value.retry_after == 2.0
    release.set()
    assert await asyncio.gather(*running) == [True, True]
    assert calls.in_flight == 0
    await calls.read(time.sleep, 0)  # room again
    calls.shutdown()


async def test_a_cancelled_search_still_counts_until_its_thread_is_done() -> None:
    """The bound is on work the threads hold, not on callers still waiting for it."""
    calls = StoreCalls(threads=1, max_waiting=0)
    release = threading.Event()
    task = asyncio.create_task(calls.read(release.wait, 5))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(VectorStoreOverloadedError):
        await calls.read(time.sleep, 0)
    release.set()
    for _ in range(100):
        if calls.in_flight == 0:
            break
        await asyncio.sleep(0.01)
    assert calls.in_flight == 0
    calls.shutdown()


async def test_the_event_loop_runs_while_a_search_blocks_its_thread() -> None:
    calls = StoreCalls(threads=1, max_waiting=0)
    search = asyncio.create_task(calls.read(time.sleep, 0.3))
    started = time.perf_counter()
    await asyncio.sleep(0.01)
    assert time.perf_counter() - started < 0.1
    await search
    calls.shutdown()


async def test_writes_take_turns_on_their_own_thread_and_are_never_refused() -> None:
    calls = StoreCalls(threads=1, max_waiting=0)
    order: list[int] = []
    await asyncio.gather(*(calls.write(order.append, i) for i in range(20)))
    assert order == list(range(20))
    calls.shutdown()


def test_an_overloaded_store_is_a_429_with_retry_after() -> None:
    error = classify(VectorStoreOverloadedError("busy", 1.5))
    assert error.status_code == 429
    assert error.retry_after == 1.5


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="threads"):
        StoreCalls(threads=0)
    with pytest.raises(ValueError, match="max_waiting"):
        StoreCalls(max_waiting=-1)
