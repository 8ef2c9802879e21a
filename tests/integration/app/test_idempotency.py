"""Idempotency keys: replays, conflicts, and expired keys purged on a schedule."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from app.core.errors import ResourceConflictError, UnprocessableError
from app.idempotency import IdempotencyKeyRow, IdempotencyStore, request_hash
from kernel.orm import utcnow

TENANT = "00000000-0000-0000-0000-000000000001"


async def _count(sessions) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(IdempotencyKeyRow)))


async def _expire(sessions, key: str) -> None:
    async with sessions() as session, session.begin():
        await session.execute(
            update(IdempotencyKeyRow)
            .where(IdempotencyKeyRow.key == key)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )


async def test_a_completed_key_replays_and_a_changed_body_is_refused(sessions) -> None:
    store = IdempotencyStore(sessions)
    first = await store.claim(TENANT, "chat", "k1", request_hash("a"))
    assert not first.replay
    with pytest.raises(ResourceConflictError):
        await store.claim(TENANT, "chat", "k1", request_hash("a"))
    await store.complete(TENANT, "chat", "k1", 201, {"id": "m1"})
    again = await store.claim(TENANT, "chat", "k1", request_hash("a"))
    assert again.replay
    assert (again.status_code, again.response) == (201, {"id": "m1"})
    with pytest.raises(UnprocessableError):
        await store.claim(TENANT, "chat", "k1", request_hash("b"))


async def test_start_purges_expired_keys_and_keeps_live_ones(sessions) -> None:
    store = IdempotencyStore(sessions)
    for key in ("old-1", "old-2", "live"):
        await store.claim(TENANT, "chat", key, request_hash(key))
        await store.complete(TENANT, "chat", key, 200, {"key": key})
    await _expire(sessions, "old-1")
    await _expire(sessions, "old-2")
    await store.start()
    try:
        assert await _count(sessions) == 1
        replay = await store.claim(TENANT, "chat", "live", request_hash("live"))
        assert replay.response == {"key": "live"}
    finally:
        await store.stop()


async def test_expired_keys_are_purged_in_the_background(sessions) -> None:
    store = IdempotencyStore(sessions, purge_every_s=0.05)
    await store.start()
    try:
        await store.claim(TENANT, "upload", "later", request_hash("x"))
        await _expire(sessions, "later")
        for _ in range(100):
            if await _count(sessions) == 0:
                break
            await asyncio.sleep(0.05)
        assert await _count(sessions) == 0
    finally:
        await store.stop()
