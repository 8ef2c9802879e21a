"""Contract tests of the hot conversation state, in-process and in Redis, on SQLite
and PostgreSQL: conversations read through it answer exactly what SQL holds, a
second turn's history load costs no SQL statement, and neither a crashed writer
nor a lost Redis ever serves a stale history."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
from redis.asyncio import Redis
from sqlalchemy import event

from conversation import (
    ConversationInfo,
    ConversationService,
    HotState,
    MemoryHotState,
    MessageInfo,
    NotFoundError,
    RedisHotState,
    TenantInfo,
    new_id,
)
from conversation.hot_state import CachedConversation
from tests.e2e.server import free_port

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

MakeHot = Callable[..., HotState]


@pytest.fixture(params=["memory", "redis"])
async def make_hot(
    request: pytest.FixtureRequest, redis_url: str, redis_prefix: str
) -> AsyncIterator[MakeHot]:
    """Builds hot states of one kind; Redis ones share one server and key prefix,
    like the API processes of one deployment."""
    clients: list[Redis] = []

    def make(**options: Any) -> HotState:
        if request.param == "memory":
            return MemoryHotState(**options)
        client = Redis.from_url(redis_url)
        clients.append(client)
        return RedisHotState(client, key_prefix=redis_prefix, **options)

    yield make
    for client in clients:
        keys = [key async for key in client.scan_iter(match=f"{redis_prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


@contextmanager
def counting_sql(sessions: async_sessionmaker[AsyncSession]) -> Iterator[list[str]]:
    """The SQL statements run inside the block."""
    engine = sessions.kw["bind"].sync_engine
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(args[2])

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def _answer(service: ConversationService, tenant_id: str, cid: str, text: str) -> MessageInfo:
    return await service.record_assistant_message(
        tenant_id=tenant_id,
        conversation_id=cid,
        message_id=new_id(),
        content=text,
        status="complete",
        finish_reason="stop",
        model="m",
        model_version=None,
        sources=[{"n": 1, "text": "Café ☕"}],
        citations=[],
        usage={"completion_tokens": 3},
        timings={"total": 1.5},
    )


async def _turn(service: ConversationService, tenant_id: str, cid: str, n: int) -> None:
    """One chat turn as the pipeline runs it: load, store the question, store the answer."""
    await service.get(tenant_id, cid)
    await service.recent_messages(tenant_id, cid, 20)
    await service.add_user_message(tenant_id, cid, f"question {n}")
    await _answer(service, tenant_id, cid, f"answer {n}")


async def test_a_second_turn_loads_its_history_without_sql(
    sessions: async_sessionmaker[AsyncSession], make_hot: MakeHot, tenant: TenantInfo
) -> None:
    """Guards the point of the hot state: a turn's load hits no SQL once the
    conversation is active, and what it serves equals the record."""
    service = ConversationService(sessions, make_hot())
    record = ConversationService(sessions)
    conversation = await service.create(tenant.id)
    await _turn(service, tenant.id, conversation.id, 1)

    with counting_sql(sessions) as statements:
        info = await service.get(tenant.id, conversation.id)
        history = await service.recent_messages(tenant.id, conversation.id, 20)
    assert statements == []
    assert history == await record.recent_messages(tenant.id, conversation.id, 20)
    assert [m.content for m in history] == ["question 1", "answer 1"]
    assert history[1].sources == [{"n": 1, "text": "Café ☕"}]
    assert info == await record.get(tenant.id, conversation.id)
    assert info.title == "question 1"

    # Another process of the deployment (a fresh service on the same hot state)
    # fills it once from SQL, then serves it too.
    other = ConversationService(sessions, make_hot())
    conversation2 = await record.create(tenant.id)
    await record.add_user_message(tenant.id, conversation2.id, "cold")
    with counting_sql(sessions) as statements:
        await other.recent_messages(tenant.id, conversation2.id, 20)
    assert statements
    with counting_sql(sessions) as statements:
        assert [m.content for m in await other.messages(tenant.id, conversation2.id)] == ["cold"]
    assert statements == []


async def test_only_the_newest_messages_stay_hot(
    sessions: async_sessionmaker[AsyncSession], make_hot: MakeHot, tenant: TenantInfo
) -> None:
    service = ConversationService(sessions, make_hot(max_messages=3))
    record = ConversationService(sessions)
    conversation = await service.create(tenant.id)
    for n in range(3):
        await _turn(service, tenant.id, conversation.id, n)
    with counting_sql(sessions) as statements:
        recent = await service.recent_messages(tenant.id, conversation.id, 3)
    assert statements == []
    assert [m.content for m in recent] == ["answer 1", "question 2", "answer 2"]
    # Longer reads than the hot window go to SQL and still answer exactly.
    assert await service.recent_messages(tenant.id, conversation.id, 5) == (
        await record.recent_messages(tenant.id, conversation.id, 5)
    )
    assert len(await service.messages(tenant.id, conversation.id)) == 6


async def test_another_tenant_never_gets_a_hot_conversation(
    sessions: async_sessionmaker[AsyncSession],
    make_hot: MakeHot,
    tenant: TenantInfo,
    other_tenant: TenantInfo,
) -> None:
    service = ConversationService(sessions, make_hot())
    conversation = await service.create(tenant.id)
    await _turn(service, tenant.id, conversation.id, 1)
    with pytest.raises(NotFoundError):
        await service.get(other_tenant.id, conversation.id)
    with pytest.raises(NotFoundError):
        await service.recent_messages(other_tenant.id, conversation.id, 20)
    with pytest.raises(NotFoundError):
        await service.messages(other_tenant.id, conversation.id)
    with pytest.raises(NotFoundError):
        await service.add_user_message(other_tenant.id, conversation.id, "hijack")
    # The failed attempts changed nothing the owner sees.
    history = await service.recent_messages(tenant.id, conversation.id, 20)
    assert [m.content for m in history] == ["question 1", "answer 1"]


async def test_deleting_a_conversation_removes_it_from_the_hot_state(
    sessions: async_sessionmaker[AsyncSession], make_hot: MakeHot, tenant: TenantInfo
) -> None:
    hot = make_hot()
    service = ConversationService(sessions, hot)
    conversation = await service.create(tenant.id)
    await _turn(service, tenant.id, conversation.id, 1)
    await service.delete(tenant.id, conversation.id)
    assert (await hot.lookup(tenant.id, conversation.id)).entry is None
    with pytest.raises(NotFoundError):
        await service.get(tenant.id, conversation.id)
    with pytest.raises(NotFoundError):
        await service.recent_messages(tenant.id, conversation.id, 20)


class _ProcessDied(BaseException):
    """Stands for the API process dying: nothing after it runs."""


async def test_a_writer_dying_between_sql_and_the_hot_state_leaves_no_stale_history(
    sessions: async_sessionmaker[AsyncSession],
    make_hot: MakeHot,
    tenant: TenantInfo,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Guards crash consistency (b): the answer committed to SQL by a process that
    died before updating the hot state is in the next history load, both while the
    dead writer's lease runs and after it."""
    lease = 0.5
    shared = make_hot(write_lease_s=lease)
    service = ConversationService(sessions, shared)
    conversation = await service.create(tenant.id)
    await _turn(service, tenant.id, conversation.id, 1)

    async def die(*args: Any) -> None:
        raise _ProcessDied

    monkeypatch.setattr(shared, "end_write", die)  # dies after the SQL commit
    with pytest.raises(_ProcessDied):
        await service.add_user_message(tenant.id, conversation.id, "committed, then the crash")
    monkeypatch.undo()
    died_at = time.monotonic()

    history = await service.recent_messages(tenant.id, conversation.id, 20)
    assert history[-1].content == "committed, then the crash"
    await asyncio.sleep(max(0.0, lease + 0.1 - (time.monotonic() - died_at)))
    history = await service.recent_messages(tenant.id, conversation.id, 20)
    assert history[-1].content == "committed, then the crash"
    assert [m.content for m in history] == [
        "question 1",
        "answer 1",
        "committed, then the crash",
    ]
    # Rebuilt from SQL, the entry is hot again and follows later writes.
    await _answer(service, tenant.id, conversation.id, "answer 2")
    with counting_sql(sessions) as statements:
        history = await service.recent_messages(tenant.id, conversation.id, 20)
    assert statements == []
    assert history == await ConversationService(sessions).recent_messages(
        tenant.id, conversation.id, 20
    )


async def test_a_reader_that_read_sql_before_a_write_cannot_fill_in_stale_state(
    sessions: async_sessionmaker[AsyncSession], make_hot: MakeHot, tenant: TenantInfo
) -> None:
    hot = make_hot()
    record = ConversationService(sessions)
    conversation = await record.create(tenant.id)
    found = await hot.lookup(tenant.id, conversation.id)
    assert found.entry is None
    assert found.fillable
    stale = CachedConversation(conversation, (), complete=True)  # what the reader read

    writer = ConversationService(sessions, hot)
    await writer.add_user_message(tenant.id, conversation.id, "written meanwhile")
    await hot.fill(tenant.id, conversation.id, found.version, stale)

    history = await writer.recent_messages(tenant.id, conversation.id, 20)
    assert [m.content for m in history] == ["written meanwhile"]


async def test_an_entry_expires_after_its_ttl(
    sessions: async_sessionmaker[AsyncSession], make_hot: MakeHot, tenant: TenantInfo
) -> None:
    # NOTE: a TTL long enough for the first lookup to come before it on a loaded
    # machine: at 0.3 s, one CI run's write and lookup were further apart.
    hot = make_hot(ttl_s=1.0)
    service = ConversationService(sessions, hot)
    conversation = await service.create(tenant.id)
    await service.add_user_message(tenant.id, conversation.id, "hello")
    assert (await hot.lookup(tenant.id, conversation.id)).entry is not None
    await asyncio.sleep(1.5)
    assert (await hot.lookup(tenant.id, conversation.id)).entry is None


async def test_a_failed_sql_write_drops_the_entry_rather_than_guessing(
    make_hot: MakeHot, tenant: TenantInfo
) -> None:
    hot = make_hot()
    now = datetime.now(UTC)
    info = ConversationInfo(new_id(), tenant.id, "t", now, now)
    await hot.fill(tenant.id, info.id, 0, CachedConversation(info, (), complete=True))

    async def failing_write() -> None:
        async with hot.writing(tenant.id, info.id) as write:
            write.record(info)
            raise RuntimeError("the SQL write failed")

    with pytest.raises(RuntimeError):
        await failing_write()
    assert (await hot.lookup(tenant.id, info.id)).entry is None


# --- Redis lost, flushed or unreachable (a throwaway server, never the shared one) ---


class _ThrowawayRedis:
    """A ``redis-server`` of this test's own, to flush, stop and start at will."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            done = subprocess.run(
                ["redis-cli", "-p", str(self.port), "ping"], capture_output=True, check=False
            )
            if done.stdout.strip() == b"PONG":
                return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@pytest.fixture
def throwaway_redis() -> Iterator[_ThrowawayRedis]:
    server = _ThrowawayRedis()
    server.start()
    yield server
    server.stop()


async def test_reads_fall_back_to_sql_when_redis_is_flushed_or_down(
    sessions: async_sessionmaker[AsyncSession],
    throwaway_redis: _ThrowawayRedis,
    tenant: TenantInfo,
) -> None:
    """Guards crash consistency (a): losing Redis costs SQL reads, never an error
    or a wrong history, and the hot state refills once Redis is back."""
    client = Redis.from_url(throwaway_redis.url)
    service = ConversationService(sessions, RedisHotState(client, timeout_s=0.5))
    record = ConversationService(sessions)
    try:
        conversation = await service.create(tenant.id)
        await _turn(service, tenant.id, conversation.id, 1)

        await client.flushall()
        with counting_sql(sessions) as statements:
            history = await service.recent_messages(tenant.id, conversation.id, 20)
        assert statements
        assert [m.content for m in history] == ["question 1", "answer 1"]
        with counting_sql(sessions) as statements:
            await service.recent_messages(tenant.id, conversation.id, 20)
        assert statements == []

        throwaway_redis.stop()
        await _turn(service, tenant.id, conversation.id, 2)  # no error
        history = await service.recent_messages(tenant.id, conversation.id, 20)
        assert history == await record.recent_messages(tenant.id, conversation.id, 20)
        assert len(history) == 4

        throwaway_redis.start()
        await service.add_user_message(tenant.id, conversation.id, "question 3")
        history = await service.recent_messages(tenant.id, conversation.id, 20)
        assert history == await record.recent_messages(tenant.id, conversation.id, 20)
        with counting_sql(sessions) as statements:
            assert await service.recent_messages(tenant.id, conversation.id, 20) == history
        assert statements == []
    finally:
        await client.aclose()


async def test_a_write_redis_missed_is_dropped_when_redis_answers_again(
    sessions: async_sessionmaker[AsyncSession],
    throwaway_redis: _ThrowawayRedis,
    tenant: TenantInfo,
) -> None:
    """Redis kept its data but did not answer one write in time: the entry it
    still holds is stale and must not be served once it answers again."""
    client = Redis.from_url(throwaway_redis.url)
    service = ConversationService(sessions, RedisHotState(client, timeout_s=0.3))
    try:
        conversation = await service.create(tenant.id)
        await _turn(service, tenant.id, conversation.id, 1)
        pauser = Redis.from_url(throwaway_redis.url)
        await pauser.execute_command("CLIENT", "PAUSE", "1000", "ALL")
        await pauser.aclose()
        await service.add_user_message(tenant.id, conversation.id, "while Redis was away")
        await asyncio.sleep(1.0)
        history = await service.recent_messages(tenant.id, conversation.id, 20)
        assert history[-1].content == "while Redis was away"
    finally:
        await client.aclose()
