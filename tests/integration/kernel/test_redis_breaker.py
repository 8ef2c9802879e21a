"""The Redis circuit breaker over real sockets: a refused connection and a server that
accepts but never answers (a listening socket nobody reads) each trip it once; while
it is open, calls fail without touching the network; once the cooldown passes, Redis
is tried again."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import TYPE_CHECKING

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from kernel.redis_breaker import RedisBreaker, open_redis

if TYPE_CHECKING:
    from collections.abc import Iterator

    from redis.asyncio import Redis


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) and never replies."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield int(listener.getsockname()[1])


def _client(url: str, cooldown_s: float) -> tuple[Redis, RedisBreaker]:
    return open_redis(
        url,
        max_connections=4,
        pool_timeout_s=5.0,
        connect_timeout_s=0.5,
        read_timeout_s=0.5,
        cooldown_s=cooldown_s,
    )


def test_the_breaker_is_open_for_its_cooldown_after_a_trip() -> None:
    now = [100.0]
    breaker = RedisBreaker(5.0, clock=lambda: now[0])
    breaker.check()
    breaker.trip(TimeoutError())
    assert breaker.is_open
    assert breaker.trips == 1
    with pytest.raises(RedisConnectionError, match="not tried for 5 s"):
        breaker.check()
    now[0] += 5.0
    breaker.check()
    breaker.trip(TimeoutError())
    assert breaker.trips == 2


def test_a_zero_cooldown_never_opens() -> None:
    breaker = RedisBreaker(0.0)
    breaker.trip(TimeoutError())
    assert not breaker.is_open


async def test_a_silent_server_costs_one_timeout_then_calls_fail_at_once(
    silent_port: int,
) -> None:
    client, breaker = _client(f"redis://127.0.0.1:{silent_port}/0", cooldown_s=30.0)
    try:
        started = time.monotonic()
        with pytest.raises(RedisError):
            await client.get("k")
        assert time.monotonic() - started >= 0.4  # the read timeout, paid once
        assert breaker.trips == 1
        for _ in range(20):
            with pytest.raises(RedisConnectionError, match="not tried"):
                await client.get("k")
        assert breaker.trips == 1
    finally:
        await client.aclose()


async def test_a_working_server_is_used_again_after_the_cooldown(redis_url: str) -> None:
    client, breaker = _client(redis_url, cooldown_s=0.3)
    try:
        assert await client.ping()
        breaker.trip(TimeoutError("as if it had hung"))
        with pytest.raises(RedisConnectionError):
            await client.ping()
        await asyncio.sleep(0.35)
        assert await client.ping()
        assert not breaker.is_open
    finally:
        await client.aclose()


async def test_an_error_reply_is_not_a_failure_of_redis(redis_url: str, redis_prefix: str) -> None:
    client, breaker = _client(redis_url, cooldown_s=30.0)
    try:
        await client.set(f"{redis_prefix}s", "text")
        with pytest.raises(RedisError, match="WRONGTYPE"):
            await client.lpush(f"{redis_prefix}s", "x")
        assert not breaker.is_open
        assert await client.delete(f"{redis_prefix}s") == 1
    finally:
        await client.aclose()
