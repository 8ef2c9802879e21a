"""The token-bucket contract, one test body for the in-process and the Redis store."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import pytest
from redis.asyncio import Redis

from app.ratelimit import (
    Bucket,
    BucketsUnavailableError,
    InProcessTokenBuckets,
    RedisTokenBuckets,
    TokenBuckets,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


@pytest.fixture(params=["in_process", "redis"])
async def buckets(
    request: pytest.FixtureRequest, redis_url: str, redis_prefix: str
) -> AsyncIterator[TokenBuckets]:
    if request.param == "in_process":
        yield InProcessTokenBuckets()
        return
    client = Redis.from_url(redis_url)
    yield RedisTokenBuckets(client, redis_prefix)
    keys = [key async for key in client.scan_iter(match=f"{redis_prefix}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


async def test_a_fresh_bucket_lets_its_burst_through_then_refuses(buckets: TokenBuckets) -> None:
    bucket = Bucket("k", burst=3, rate=0.01)
    outcomes = [(await buckets.acquire([bucket])).allowed for _ in range(5)]
    assert outcomes == [True, True, True, False, False]
    refused = await buckets.acquire([bucket])
    assert refused.levels[0] == pytest.approx(0, abs=0.01)
    # One unit at 0.01/s is 100 s away.
    assert refused.retry_after([bucket]) == pytest.approx(100, rel=0.05)


async def test_an_acquire_takes_from_every_bucket_or_from_none(buckets: TokenBuckets) -> None:
    roomy, tight = Bucket("roomy", 10, 0.01), Bucket("tight", 1, 0.01)
    assert (await buckets.acquire([roomy, tight])).allowed
    refused = await buckets.acquire([roomy, tight])
    assert not refused.allowed
    assert refused.blocking([roomy, tight]) == [1]
    # The refused call took nothing from the bucket that had room.
    assert refused.levels[0] == pytest.approx(9, abs=0.01)
    assert (await buckets.acquire([roomy])).levels[0] == pytest.approx(8, abs=0.01)


async def test_buckets_refill_at_their_rate_up_to_their_burst(buckets: TokenBuckets) -> None:
    bucket = Bucket("k", burst=2, rate=20)
    assert (await buckets.acquire([bucket])).allowed
    assert (await buckets.acquire([bucket])).allowed
    assert not (await buckets.acquire([bucket])).allowed
    await asyncio.sleep(0.12)  # 2.4 units of refill, capped at the burst of 2
    levels = [(await buckets.acquire([bucket])).levels[0] for _ in range(2)]
    assert levels[0] == pytest.approx(1, abs=0.3)
    assert not (await buckets.acquire([bucket])).allowed


async def test_a_charge_after_the_fact_leaves_a_debt_that_refuses_until_repaid(
    buckets: TokenBuckets,
) -> None:
    """Guards token budgets: a turn's tokens are charged after it, even past zero."""
    # NOTE: a refill of 10/s leaves 100 ms of slack per unit, so a busy CI machine's
    # pauses between the calls do not move the figures out of their tolerance.
    check = Bucket("tokens", burst=10, rate=10, need=1, cost=0)
    charge = Bucket("tokens", burst=10, rate=10, need=0, cost=25)
    assert (await buckets.acquire([check])).allowed
    charged = await buckets.acquire([charge])
    assert charged.allowed
    assert charged.levels[0] == pytest.approx(-15, abs=0.5)
    refused = await buckets.acquire([check])
    assert not refused.allowed
    assert refused.retry_after([check]) == pytest.approx(1.6, abs=0.1)
    await asyncio.sleep(refused.retry_after([check]) + 0.02)
    assert (await buckets.acquire([check])).allowed


async def test_concurrent_acquires_never_overspend(buckets: TokenBuckets) -> None:
    bucket = Bucket("k", burst=10, rate=0.01)
    outcomes = await asyncio.gather(*(buckets.acquire([bucket]) for _ in range(40)))
    assert sum(d.allowed for d in outcomes) == 10


async def test_a_bigger_burst_caps_at_the_new_burst(buckets: TokenBuckets) -> None:
    """A key whose override shrinks its burst is held to the new burst at once."""
    assert (await buckets.acquire([Bucket("k", burst=100, rate=1)])).allowed
    shrunk = await buckets.acquire([Bucket("k", burst=2, rate=1)])
    assert shrunk.levels[0] == pytest.approx(1, abs=0.01)


async def test_two_clients_of_one_redis_share_one_budget(redis_url: str, redis_prefix: str) -> None:
    """What two API processes see: one budget, whichever node a request lands on."""
    first, second = Redis.from_url(redis_url), Redis.from_url(redis_url)
    try:
        nodes = [RedisTokenBuckets(first, redis_prefix), RedisTokenBuckets(second, redis_prefix)]
        bucket = Bucket("shared", burst=6, rate=0.01)
        outcomes = await asyncio.gather(*(nodes[i % 2].acquire([bucket]) for i in range(20)))
        assert sum(d.allowed for d in outcomes) == 6
        other_prefix = RedisTokenBuckets(first, redis_prefix + "other:")
        assert (await other_prefix.acquire([bucket])).allowed
    finally:
        await first.delete(*[k async for k in first.scan_iter(match=f"{redis_prefix}*")])
        await first.aclose()
        await second.aclose()


async def test_a_flood_beyond_the_redis_pool_is_counted_not_let_through(
    redis_url: str, redis_prefix: str
) -> None:
    """Guards against fail-open under load: redis-py's pool refuses past 100 connections."""
    client = Redis.from_url(redis_url)
    try:
        store = RedisTokenBuckets(client, redis_prefix)
        bucket = Bucket("flood", burst=50, rate=0.01)
        outcomes = await asyncio.gather(*(store.acquire([bucket]) for _ in range(400)))
        assert sum(d.allowed for d in outcomes) == 50
    finally:
        await client.delete(*[k async for k in client.scan_iter(match=f"{redis_prefix}*")])
        await client.aclose()


async def test_redis_buckets_expire_once_full_again(redis_url: str, redis_prefix: str) -> None:
    client = Redis.from_url(redis_url)
    try:
        await RedisTokenBuckets(client, redis_prefix).acquire([Bucket("k", burst=4, rate=2)])
        ttl_ms = await client.pttl(f"{redis_prefix}k")
        # One unit at 2/s refills in 0.5 s; the key lives that long plus a second.
        assert 1000 < ttl_ms <= 1500
    finally:
        await client.delete(f"{redis_prefix}k")
        await client.aclose()


async def test_an_unreachable_redis_is_reported_not_raised_raw() -> None:
    client = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    try:
        with pytest.raises(BucketsUnavailableError):
            await RedisTokenBuckets(client, "x:").acquire([Bucket("k", 1, 1)])
    finally:
        await client.aclose()


async def test_redis_round_trip_cost(redis_url: str, redis_prefix: str) -> None:
    """Measures one request check (four buckets, one EVALSHA); printed with ``-s``."""
    client = Redis.from_url(redis_url)
    store = RedisTokenBuckets(client, redis_prefix)
    checks = [Bucket(f"b{i}", 1e9, 1e9) for i in range(4)]
    try:
        await store.acquire(checks)
        n = 300
        start = time.perf_counter()
        for _ in range(n):
            await store.acquire(checks)
        per_call_ms = (time.perf_counter() - start) / n * 1000
        print(f"redis token-bucket check: {per_call_ms:.3f} ms per request")
        assert per_call_ms < 20
    finally:
        await client.delete(*[k async for k in client.scan_iter(match=f"{redis_prefix}*")])
        await client.aclose()
