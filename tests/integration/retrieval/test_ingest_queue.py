"""Contract tests of the ingestion queue: one body, run on the in-process and the Redis one
(the ``make_queue`` fixture of this folder's conftest).

They pin the at-least-once semantics the ingestion workers rely on: an entry is
handed to one consumer at a time, comes back to another when its consumer stops
renewing it, is dead-lettered after too many deliveries, and the queue is bounded.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from redis.asyncio import Redis

from retrieval.errors import IngestQueueFullError, IngestQueueUnavailableError
from retrieval.ingest_queue import IngestQueue, RedisStreamsIngestQueue
from retrieval.types import IngestJob

MakeQueue = Callable[..., IngestQueue]
"""The ``make_queue`` fixture of this folder's conftest."""

CLAIM_IDLE_S = 0.3
MAX_DELIVERIES = 3
MAX_QUEUED = 4


def _job(n: int) -> IngestJob:
    return IngestJob(tenant_id="tenant-1", document_id=f"doc-{n}", content_hash=f"{n:064x}")


@pytest.fixture
def queue(make_queue: MakeQueue) -> IngestQueue:
    """A small queue of each kind (see ``make_queue``), so the bounds are reached fast."""
    return make_queue(
        claim_idle_s=CLAIM_IDLE_S, max_deliveries=MAX_DELIVERIES, max_queued=MAX_QUEUED
    )


async def test_entries_come_out_in_order_once_each_and_ack_removes_them(
    queue: IngestQueue,
) -> None:
    await queue.ensure_ready()
    for n in range(3):
        await queue.put(_job(n))
    assert await queue.length() == 3
    first = await queue.receive("a", 1.0)
    second = await queue.receive("b", 1.0)
    assert first is not None
    assert second is not None
    assert [first.job, second.job] == [_job(0), _job(1)]
    assert first.deliveries == second.deliveries == 1
    assert not first.dead
    await queue.ack(first)
    await queue.ack(second)
    assert await queue.length() == 1
    third = await queue.receive("a", 1.0)
    assert third is not None
    assert third.job == _job(2)
    await queue.ack(third)
    assert await queue.length() == 0
    started = time.monotonic()
    assert await queue.receive("a", 0.2) is None
    assert time.monotonic() - started >= 0.15


async def test_an_unacked_entry_goes_to_another_consumer_after_the_idle_time(
    queue: IngestQueue,
) -> None:
    """Guards crash recovery: a worker that dies without acking loses its entry."""
    await queue.put(_job(1))
    taken = await queue.receive("dies", 1.0)
    assert taken is not None
    # Within the idle time nobody else gets it.
    assert await queue.receive("other", 0.05) is None
    await asyncio.sleep(CLAIM_IDLE_S + 0.05)
    again = await queue.receive("other", 1.0)
    assert again is not None
    assert again.job == _job(1)
    assert again.entry_id == taken.entry_id
    assert again.deliveries == 2
    # The first consumer has lost it: renewing says so.
    assert not await queue.renew("dies", taken)
    await queue.ack(again)
    assert await queue.length() == 0


async def test_renewing_keeps_an_entry_from_being_claimed(queue: IngestQueue) -> None:
    await queue.put(_job(1))
    taken = await queue.receive("slow", 1.0)
    assert taken is not None
    for _ in range(4):
        await asyncio.sleep(CLAIM_IDLE_S / 2)
        assert await queue.renew("slow", taken)
        assert await queue.receive("other", 0.01) is None
    await queue.ack(taken)


async def test_entries_are_dead_lettered_after_max_deliveries(queue: IngestQueue) -> None:
    await queue.put(_job(7))
    for attempt in range(1, MAX_DELIVERIES + 1):
        delivery = await queue.receive(f"worker-{attempt}", CLAIM_IDLE_S * 3)
        assert delivery is not None
        assert delivery.deliveries == attempt
        assert not delivery.dead
        await asyncio.sleep(CLAIM_IDLE_S + 0.05)  # never acked
    dead = await queue.receive("last", CLAIM_IDLE_S * 3)
    assert dead is not None
    assert dead.dead
    assert dead.job == _job(7)
    assert await queue.dead_letters() == [_job(7)]
    assert await queue.length() == 0
    await asyncio.sleep(CLAIM_IDLE_S + 0.05)
    assert await queue.receive("last", 0.05) is None


async def test_the_queue_is_bounded(queue: IngestQueue) -> None:
    for n in range(MAX_QUEUED):
        await queue.put(_job(n))
    assert not await queue.has_room()
    with pytest.raises(IngestQueueFullError, match="full"):
        await queue.put(_job(99))
    # In-progress entries count too, until acked.
    delivery = await queue.receive("a", 1.0)
    assert delivery is not None
    with pytest.raises(IngestQueueFullError):
        await queue.put(_job(99))
    await queue.ack(delivery)
    assert await queue.has_room()
    await queue.put(_job(99))
    assert await queue.length() == MAX_QUEUED


async def test_a_waiting_consumer_gets_an_entry_put_meanwhile(queue: IngestQueue) -> None:
    await queue.ensure_ready()
    waiting = asyncio.create_task(queue.receive("a", 5.0))
    await asyncio.sleep(0.1)
    started = time.monotonic()
    await queue.put(_job(3))
    delivery = await waiting
    assert delivery is not None
    assert delivery.job == _job(3)
    assert time.monotonic() - started < 1.0
    await queue.ack(delivery)


# --- Redis only ---


async def test_an_unreachable_redis_is_a_clear_error() -> None:
    client = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    queue = RedisStreamsIngestQueue(client, "ragserve-test:unreachable")
    with pytest.raises(IngestQueueUnavailableError, match="unreachable"):
        await queue.put(_job(1))
    await client.aclose()


async def test_jobs_lists_waiting_and_in_progress_entries_until_acked(queue: IngestQueue) -> None:
    """Guards re-queueing on start: it puts only the stored uploads the queue lacks."""
    await queue.ensure_ready()
    assert await queue.jobs() == set()
    for n in range(3):
        await queue.put(_job(n))
    taken = await queue.receive("a", 1.0)
    assert taken is not None
    assert await queue.jobs() == {_job(0), _job(1), _job(2)}
    await queue.ack(taken)
    assert await queue.jobs() == {_job(1), _job(2)}


async def test_idle_consumers_holding_nothing_are_forgotten(make_queue: MakeQueue) -> None:
    """Guards the consumer group against growing by one consumer per dead process."""
    queue = make_queue(claim_idle_s=0.01, max_deliveries=MAX_DELIVERIES, max_queued=MAX_QUEUED)
    await queue.ensure_ready()
    await queue.put(_job(1))
    await queue.put(_job(2))
    held = await queue.receive("dead-with-work", 1.0)
    done = await queue.receive("dead-idle", 1.0)
    assert held is not None
    assert done is not None
    await queue.ack(done)
    await asyncio.sleep(0.2)
    forgotten = await queue.forget_idle_consumers()
    if isinstance(queue, RedisStreamsIngestQueue):
        assert forgotten == 1  # "dead-idle"; the holder keeps its pending entry
    else:
        assert forgotten == 0  # the in-process queue keeps no consumers
    # The held entry is still claimable by another consumer.
    again = await queue.receive("alive", 1.0)
    assert again is not None
    assert again.job == _job(1)
