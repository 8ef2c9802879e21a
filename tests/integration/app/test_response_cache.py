"""The response cache's contract, in-process and in a real Redis (two clients: two nodes)."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from app.chat.response_cache import (
    CachedAnswer,
    CacheKey,
    MemoryResponseCache,
    RedisResponseCache,
    ResponseCache,
)
from app.chat.response_cache.base import normalize_question

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable


@pytest.fixture(params=["memory", "redis"])
async def make_caches(
    request: pytest.FixtureRequest, redis_url: str, redis_prefix: str
) -> AsyncIterator[Callable[..., tuple[ResponseCache, ResponseCache]]]:
    """``(this node's cache, another node's view of it)``: one object in-process; two
    clients of one server in Redis."""
    clients: list[Redis] = []

    def make(**options: Any) -> tuple[ResponseCache, ResponseCache]:
        if request.param == "memory":
            cache = MemoryResponseCache(**options)
            return cache, cache
        views = []
        for _ in range(2):
            client = Redis.from_url(redis_url)
            clients.append(client)
            views.append(RedisResponseCache(client, key_prefix=redis_prefix, **options))
        return views[0], views[1]

    yield make
    if clients:
        keys = [key async for key in clients[0].scan_iter(match=f"{redis_prefix}*")]
        if keys:
            await clients[0].delete(*keys)
    for client in clients:
        await client.aclose()


def _vector(*values: float) -> tuple[float, ...]:
    v = np.zeros(8, dtype=np.float32)
    v[: len(values)] = values
    return tuple(float(x) for x in v / np.linalg.norm(v))


def _key(
    exact: str = "e1",
    scope: str = "s1",
    tenant: str = "t1",
    docs: frozenset[str] = frozenset({"d1"}),
    version: str = "v1",
) -> CacheKey:
    return CacheKey(tenant, exact, scope, "model", version, docs)


def _answer(
    text: str = "Bees dance [1].", embedding: tuple[float, ...] | None = None
) -> CachedAnswer:
    return CachedAnswer(
        pieces=tuple(text.split(" ")),
        finish_reason="stop",
        sources=({"n": 1, "chunk_id": "c1", "text": "Bees dance."},),
        question="Why do bees dance?",
        message_id="m1",
        created_at=time.time(),
        embedding=embedding,
    )


async def test_an_answer_stored_on_one_node_is_found_by_another(make_caches: Any) -> None:
    here, there = make_caches()
    assert await there.get_exact(_key()) is None
    await here.put(_key(), _answer())
    found = await there.get_exact(_key())
    assert found is not None
    assert found.pieces == _answer().pieces
    assert found.sources[0]["chunk_id"] == "c1"


async def test_another_tenant_never_gets_the_answer(make_caches: Any) -> None:
    here, there = make_caches()
    await here.put(_key(), _answer(embedding=_vector(1.0)))
    assert await there.get_exact(_key(tenant="t2")) is None
    assert await there.get_similar(_key(tenant="t2"), _vector(1.0), 0.5) is None


async def test_a_similar_question_hits_in_its_scope_only_above_the_threshold(
    make_caches: Any,
) -> None:
    here, there = make_caches()
    await here.put(_key("e1"), _answer("first", _vector(1.0, 0.0)))
    await here.put(_key("e2"), _answer("second", _vector(0.0, 1.0)))
    close = _vector(1.0, 0.2)  # cosine 0.98 with the first
    hit = await there.get_similar(_key("new"), close, 0.95)
    assert hit is not None
    assert hit.kind == "semantic"
    assert hit.answer.pieces == ("first",)
    assert hit.similarity == pytest.approx(0.9806, abs=1e-3)
    assert await there.get_similar(_key("new"), close, 0.99) is None
    assert await there.get_similar(_key("new", scope="other"), close, 0.5) is None


async def test_a_changed_document_drops_every_answer_that_used_it(make_caches: Any) -> None:
    here, there = make_caches()
    await here.put(_key("e1", docs=frozenset({"d1", "d2"})), _answer(embedding=_vector(1.0)))
    await here.put(_key("e2", docs=frozenset({"d2"})), _answer())
    await here.put(_key("e3", docs=frozenset({"d3"})), _answer())
    before = _events("invalidated")
    assert await there.invalidate_document("t1", "d2") == 2
    assert there.counters.invalidated == 2
    assert _events("invalidated") == before + 2
    assert await here.get_exact(_key("e1")) is None
    assert await here.get_exact(_key("e2")) is None
    assert await here.get_similar(_key("x"), _vector(1.0), 0.5) is None
    assert await here.get_exact(_key("e3")) is not None
    # Another tenant's document of the same id is another document.
    assert await there.invalidate_document("t2", "d3") == 0
    assert await here.get_exact(_key("e3")) is not None


async def test_a_rollout_change_drops_the_versions_that_no_longer_answer(
    make_caches: Any,
) -> None:
    here, there = make_caches()
    await here.put(_key("e1", version="v1"), _answer())
    await here.put(_key("e2", version="v2"), _answer())
    assert await there.retain_versions([("model", "v2")]) == 1
    assert await here.get_exact(_key("e1", version="v1")) is None
    assert await here.get_exact(_key("e2", version="v2")) is not None


async def test_answers_expire_after_their_ttl(make_caches: Any) -> None:
    # NOTE: long enough for the first read to come before the TTL on a loaded machine.
    here, there = make_caches(ttl_s=1.0)
    await here.put(_key(), _answer(embedding=_vector(1.0)))
    assert await there.get_exact(_key()) is not None
    await asyncio.sleep(1.5)
    assert await there.get_exact(_key()) is None
    assert await there.get_similar(_key("x"), _vector(1.0), 0.5) is None


async def test_a_scope_keeps_its_newest_questions(make_caches: Any) -> None:
    here, _ = make_caches(max_per_scope=2)
    for i in range(3):
        await here.put(_key(f"e{i}"), _answer(f"a{i}", _vector(1.0, float(i))))
        await asyncio.sleep(0.01)
    hit = await here.get_similar(_key("x"), _vector(1.0, 0.0), 0.0)
    assert hit is not None
    assert hit.answer.pieces != ("a0",)


async def test_clearing_a_tenant_leaves_the_others(make_caches: Any) -> None:
    here, there = make_caches()
    await here.put(_key("e1", tenant="t1"), _answer())
    await here.put(_key("e2", tenant="t2"), _answer())
    await there.clear("t1")
    assert await here.get_exact(_key("e1", tenant="t1")) is None
    assert await here.get_exact(_key("e2", tenant="t2")) is not None


async def test_the_memory_cache_evicts_the_least_recently_used_within_its_bytes() -> None:
    one = _answer("x" * 1000)
    cache = MemoryResponseCache(max_bytes=int(one.size * 2.5))
    for name in ("a", "b"):
        await cache.put(_key(name), one)
    assert await cache.get_exact(_key("a")) is not None  # a is now the most recent
    await cache.put(_key("c"), one)
    assert await cache.get_exact(_key("b")) is None
    assert await cache.get_exact(_key("a")) is not None
    assert cache.bytes_used <= int(one.size * 2.5)
    assert cache.counters.evicted == 1


def test_questions_are_compared_without_case_spacing_or_final_punctuation() -> None:
    assert normalize_question("  How do I   cancel a turn?? ") == "how do i cancel a turn"
    assert normalize_question("ＣＡＮＣＥＬ") == "cancel"
    assert normalize_question("enable it") != normalize_question("disable it")


async def test_a_similar_question_the_guard_refuses_gives_way_to_the_next(
    make_caches: Any,
) -> None:
    here, there = make_caches()
    await here.put(_key("e1"), _answer("refused", _vector(1.0, 0.0)))
    await here.put(_key("e2"), _answer("admitted", _vector(1.0, 0.3)))
    hit = await there.get_similar(
        _key("new"), _vector(1.0, 0.05), 0.9, lambda a: a.pieces != ("refused",)
    )
    assert hit is not None
    assert hit.answer.pieces == ("admitted",)
    # The more similar answer the guard refused is counted: a wrong hit avoided.
    assert there.counters.guarded == 1
    before = _events("guarded")
    assert await there.get_similar(_key("new"), _vector(1.0, 0.05), 0.9, lambda a: False) is None
    assert there.counters.guarded == 3
    assert _events("guarded") == before + 2
    # A candidate below the threshold is not a refusal: nothing more is counted.
    assert await there.get_similar(_key("new"), _vector(0.0, 1.0), 0.99, lambda a: False) is None
    assert there.counters.guarded == 3


def _events(event: str) -> float:
    value = REGISTRY.get_sample_value("ragserve:response_cache_events_total", {"event": event})
    return value or 0.0
