"""Contract tests of the token buffer behind ``resume``, in-process, in Redis, and in
Redis with the in-process fallback: one body per behaviour, run against each; then the
fallback with Redis unreachable."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from app.chat.resume import (
    BufferedEvent,
    FallbackTokenBuffer,
    MemoryTokenBuffer,
    RedisTokenBuffer,
    TokenBuffer,
)
from app.core.errors import ResourceNotFoundError, UnavailableError
from conversation import new_id
from kernel.redis_breaker import open_redis
from tests.e2e.server import free_port

MakeBuffer = Callable[..., tuple[TokenBuffer, TokenBuffer]]
DONE = {"message_id": "m", "finish_reason": "stop", "usage": {"completion_tokens": 3}}


@pytest.fixture(params=["memory", "redis", "fallback"])
async def make_buffers(
    request: pytest.FixtureRequest, redis_url: str, redis_prefix: str
) -> AsyncIterator[MakeBuffer]:
    """Builds ``(producer's buffer, another process's view of it)``: in-process both
    are one object; in Redis they are two clients of one server, like two API nodes."""
    clients: list[Redis] = []

    def make(**options: Any) -> tuple[TokenBuffer, TokenBuffer]:
        if request.param == "memory":
            buffer = MemoryTokenBuffer(**options)
            return buffer, buffer
        views = []
        for _ in range(2):
            client = Redis.from_url(redis_url)
            clients.append(client)
            view: TokenBuffer = RedisTokenBuffer(client, key_prefix=redis_prefix, **options)
            if request.param == "fallback":
                view = FallbackTokenBuffer(view, MemoryTokenBuffer(**options))
            views.append(view)
        return views[0], views[1]

    yield make
    if clients:
        keys = [key async for key in clients[0].scan_iter(match=f"{redis_prefix}*")]
        if keys:
            await clients[0].delete(*keys)
    for client in clients:
        await client.aclose()


async def _produce(buffer: TokenBuffer, message_id: str, texts: list[str]) -> None:
    """A whole turn: its tokens, then its ``done``."""
    for index, text in enumerate(texts):
        await buffer.append(message_id, index, text)
    await buffer.finish(message_id, "done", DONE)


async def _drain(events: AsyncIterator[BufferedEvent], limit_s: float = 10) -> list[BufferedEvent]:
    async with asyncio.timeout(limit_s):
        return [event async for event in events]


def _tokens(events: list[BufferedEvent]) -> list[tuple[int, str]]:
    return [(e.payload["index"], e.payload["text"]) for e in events if e.type == "token"]


async def test_a_finished_turn_replays_the_tokens_after_an_index_then_done(
    make_buffers: MakeBuffer,
) -> None:
    producer, other = make_buffers()
    message_id = new_id()
    await producer.open(message_id, "acme")
    await _produce(producer, message_id, ["The", " reactor", " runs", " on", " helium"])

    events = await _drain(await other.subscribe(message_id, "acme", 1))
    assert _tokens(events) == [(2, " runs"), (3, " on"), (4, " helium")]
    assert events[-1] == BufferedEvent("done", DONE)
    everything = await _drain(await other.subscribe(message_id, "acme", -1))
    assert "".join(text for _, text in _tokens(everything)) == "The reactor runs on helium"
    assert await _drain(await other.subscribe(message_id, "acme", 4)) == [
        BufferedEvent("done", DONE)
    ]


async def test_a_follower_gets_live_tokens_without_gaps_or_repeats(
    make_buffers: MakeBuffer,
) -> None:
    producer, other = make_buffers()
    message_id = new_id()
    texts = [f" t{i}" for i in range(30)]
    await producer.open(message_id, "acme")
    for index in range(3):
        await producer.append(message_id, index, texts[index])
    follower = await other.subscribe(message_id, "acme", 0)
    first = await anext(follower)  # the follower is attached before the rest is produced
    assert first.payload == {"index": 1, "text": " t1"}
    assert await other.followed(message_id)

    async def rest() -> None:
        for index in range(3, 30):
            await producer.append(message_id, index, texts[index])
            await asyncio.sleep(0.005)
        await producer.finish(message_id, "done", DONE)

    events, _ = await asyncio.gather(_drain(follower), rest())
    assert [index for index, _ in _tokens(events)] == list(range(2, 30)), events[-3:]
    assert events[-1].type == "done"


async def test_unknown_or_another_tenants_turn_is_not_found(make_buffers: MakeBuffer) -> None:
    producer, other = make_buffers()
    message_id = new_id()
    await producer.open(message_id, "acme")
    await producer.append(message_id, 0, "secret")
    with pytest.raises(ResourceNotFoundError):
        await other.subscribe(new_id(), "acme", -1)
    with pytest.raises(ResourceNotFoundError) as raised:
        await other.subscribe(message_id, "globex", -1)
    assert raised.value.code == "not_found"
    assert not await other.request_cancel(message_id, "globex")
    assert not await producer.append(message_id, 1, " stays")  # no cancel was recorded


async def test_a_cancel_asked_anywhere_reaches_the_producer(make_buffers: MakeBuffer) -> None:
    producer, other = make_buffers()
    message_id = new_id()
    await producer.open(message_id, "acme")
    assert not await producer.append(message_id, 0, "a")
    assert await other.request_cancel(message_id, "acme")
    assert await producer.append(message_id, 1, "b")


async def test_a_turn_expires_after_its_ttl(make_buffers: MakeBuffer) -> None:
    producer, other = make_buffers(ttl_s=0.3)
    message_id = new_id()
    await producer.open(message_id, "acme")
    await _produce(producer, message_id, ["a", "b"])
    await asyncio.sleep(0.6)
    with pytest.raises(ResourceNotFoundError):
        await other.subscribe(message_id, "acme", -1)


async def test_a_follower_of_a_turn_whose_producer_died_ends_with_an_error(
    make_buffers: MakeBuffer,
) -> None:
    """Guards against a resumed socket hanging forever on a turn nobody produces."""
    producer, other = make_buffers(ttl_s=0.5)
    message_id = new_id()
    await producer.open(message_id, "acme")
    await producer.append(message_id, 0, "a")
    events = await _drain(await other.subscribe(message_id, "acme", -1), limit_s=5)
    assert _tokens(events) == [(0, "a")]
    assert events[-1].type == "error"
    assert events[-1].payload["code"] == "not_found"


async def test_a_turn_keeps_only_its_newest_events(make_buffers: MakeBuffer) -> None:
    producer, other = make_buffers(max_events=16)
    message_id = new_id()
    await producer.open(message_id, "acme")
    await _produce(producer, message_id, [f"w{i} " for i in range(40)])
    events = await _drain(await other.subscribe(message_id, "acme", 35))
    assert [index for index, _ in _tokens(events)] == [36, 37, 38, 39]
    assert events[-1].type == "done"
    with pytest.raises(ResourceNotFoundError, match="no longer buffered"):
        await other.subscribe(message_id, "acme", 5)


async def test_a_turn_redis_cannot_take_is_buffered_in_the_process() -> None:
    """Redis refusing connections: the turn is buffered here and resumes here (another
    tenant: not found); another process, which cannot see this one's memory, asks Redis
    and says it is unavailable; a cancel asked here reaches the producer."""
    client, _ = open_redis(
        f"redis://127.0.0.1:{free_port()}/0",
        max_connections=2,
        pool_timeout_s=1.0,
        connect_timeout_s=0.5,
        read_timeout_s=0.5,
        cooldown_s=30.0,
    )
    try:
        here = FallbackTokenBuffer(RedisTokenBuffer(client, key_prefix="x:"), MemoryTokenBuffer())
        elsewhere = FallbackTokenBuffer(
            RedisTokenBuffer(client, key_prefix="x:"), MemoryTokenBuffer()
        )
        message_id = new_id()
        await here.open(message_id, "acme")
        await here.append(message_id, 0, "Still")
        assert await here.request_cancel(message_id, "acme")
        assert await here.append(message_id, 1, " here")
        await here.finish(message_id, "done", DONE)
        events = await _drain(await here.subscribe(message_id, "acme", -1))
        assert _tokens(events) == [(0, "Still"), (1, " here")]
        with pytest.raises(ResourceNotFoundError):
            await here.subscribe(message_id, "other-tenant", -1)
        with pytest.raises(UnavailableError, match="Redis did not answer"):
            await elsewhere.subscribe(message_id, "acme", -1)
    finally:
        await client.aclose()
