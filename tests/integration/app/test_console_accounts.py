"""Console users, sessions and sign-in budgets: on SQLite and PostgreSQL, and the
session store over this process's memory and over Redis (one test body each).

The HTTP rules (CSRF, sign-out, roles, headers) are driven against a real server in
tests/e2e/test_console.py, and in a real browser in tests/e2e/test_console_browser.py.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import pytest
from litestar.stores.memory import MemoryStore
from litestar.stores.redis import RedisStore
from redis.asyncio import Redis

from app.console.accounts import ConsoleAccounts, UserExistsError
from app.console.login_throttle import LoginThrottle
from app.console.sessions import SessionStore
from app.console.settings import ConsoleSettings
from app.core.errors import RateLimitedError
from app.ratelimit.buckets import InProcessTokenBuckets
from conversation import TenantService
from kernel.errors import InvalidInputError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from litestar.stores.base import Store
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from app.console.accounts import ConsoleUser

PASSWORD = "correct horse battery"


@pytest.fixture
async def accounts(sessions: async_sessionmaker[AsyncSession]) -> ConsoleAccounts:
    return ConsoleAccounts(sessions)


async def _tenant(sessions: async_sessionmaker[AsyncSession], name: str = "acme") -> str:
    return (await TenantService(sessions).ensure(name)).id


async def test_a_user_signs_in_with_their_password_and_no_other(
    sessions: async_sessionmaker[AsyncSession], accounts: ConsoleAccounts
) -> None:
    tenant = await _tenant(sessions)
    other = await _tenant(sessions, "globex")
    user = await accounts.create(tenant, "ada", PASSWORD, "labeler")
    assert user.role == "labeler"
    assert not user.platform_admin

    signed_in = await accounts.authenticate(tenant, "ada", PASSWORD)
    assert signed_in is not None
    assert signed_in.id == user.id
    assert (await accounts.get(tenant, user.id)).last_login_at is not None
    assert await accounts.authenticate(tenant, "ada", PASSWORD + "x") is None
    assert await accounts.authenticate(tenant, "nobody", PASSWORD) is None
    # The same username in another tenant is another person.
    assert await accounts.authenticate(other, "ada", PASSWORD) is None


async def test_the_password_is_stored_as_an_argon2id_hash(
    sessions: async_sessionmaker[AsyncSession], accounts: ConsoleAccounts
) -> None:
    from sqlalchemy import select

    from app.console.tables import ConsoleUserRow

    await accounts.create(await _tenant(sessions), "ada", PASSWORD, "admin")
    async with sessions() as session:
        stored = (await session.scalars(select(ConsoleUserRow.password_hash))).one()
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored


async def test_bad_accounts_are_refused_and_leave_nothing(
    sessions: async_sessionmaker[AsyncSession], accounts: ConsoleAccounts
) -> None:
    tenant = await _tenant(sessions)
    with pytest.raises(InvalidInputError, match="at least 12"):
        await accounts.create(tenant, "ada", "short", "labeler")
    with pytest.raises(InvalidInputError, match="username"):
        await accounts.create(tenant, "<script>", PASSWORD, "labeler")
    with pytest.raises(InvalidInputError, match="role"):
        await accounts.create(tenant, "ada", PASSWORD, "root")  # type: ignore[arg-type]
    assert await accounts.list(tenant) == []
    await accounts.create(tenant, "ada", PASSWORD, "labeler")
    with pytest.raises(UserExistsError):
        await accounts.create(tenant, "ada", PASSWORD + "!", "admin")
    assert [u.role for u in await accounts.list(tenant)] == ["labeler"]
    assert await accounts.authenticate(tenant, "ada", PASSWORD) is not None


async def test_a_disabled_user_cannot_sign_in_and_loses_their_sessions(
    sessions: async_sessionmaker[AsyncSession], accounts: ConsoleAccounts
) -> None:
    tenant = await _tenant(sessions)
    user = await accounts.create(tenant, "ada", PASSWORD, "labeler")
    assert await accounts.active(user.id) is not None
    await accounts.set_disabled(tenant, user.id, True)
    assert await accounts.authenticate(tenant, "ada", PASSWORD) is None
    # ``active`` is what every console request checks for its session's user.
    assert await accounts.active(user.id) is None
    await accounts.set_disabled(tenant, user.id, False)
    assert await accounts.authenticate(tenant, "ada", PASSWORD) is not None


@pytest.fixture(params=["memory", "redis"])
async def store(
    request: pytest.FixtureRequest, redis_url: str, redis_prefix: str
) -> AsyncIterator[Store]:
    if request.param == "memory":
        yield MemoryStore()
        return
    client = Redis.from_url(redis_url)
    try:
        yield RedisStore(client, namespace=f"{redis_prefix}console-sessions")
    finally:
        await client.aclose()


def _someone(user_id: str = "u1") -> ConsoleUser:
    from datetime import UTC, datetime

    from app.console.accounts import ConsoleUser

    return ConsoleUser(
        id=user_id,
        tenant_id="t1",
        username="ada",
        role="labeler",
        platform_admin=False,
        created_at=datetime.now(UTC),
        last_login_at=None,
        disabled_at=None,
    )


async def test_a_session_lives_until_sign_out(store: Store) -> None:
    sessions = SessionStore(store, idle_s=60, absolute_s=3600)
    token, created = await sessions.create(_someone())
    loaded = await sessions.load(token)
    assert loaded == created
    assert loaded.labeler == "console:u1"
    assert loaded.csrf_ok(created.csrf)
    assert not loaded.csrf_ok("forged")
    assert not loaded.csrf_ok(None)
    # Another sign-in is another session with another CSRF token.
    token2, other = await sessions.create(_someone())
    assert token2 != token
    assert other.csrf != created.csrf
    await sessions.destroy(token)
    assert await sessions.load(token) is None
    assert await sessions.load(token2) == other
    assert await sessions.load("made-up") is None
    assert await sessions.load("x" * 500) is None


async def test_an_idle_session_ends_and_a_busy_one_ends_at_its_absolute_lifetime(
    store: Store,
) -> None:
    idle = SessionStore(store, idle_s=1, absolute_s=3600)
    token, _ = await idle.create(_someone())
    await asyncio.sleep(1.3)
    assert await idle.load(token) is None

    busy = SessionStore(store, idle_s=60, absolute_s=0.8)
    token, _ = await busy.create(_someone())
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:
        assert await busy.load(token) is not None
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)
    assert await busy.load(token) is None


async def test_the_store_never_holds_the_cookie(store: Store) -> None:
    sessions = SessionStore(store, idle_s=60, absolute_s=3600)
    token, _ = await sessions.create(_someone())
    assert await store.get(token) is None


async def test_sign_in_attempts_are_limited_per_account_and_per_address() -> None:
    settings = ConsoleSettings(
        login_attempts_per_account=3, login_attempts_per_ip=5, login_refill_s=600
    )
    throttle = LoginThrottle(InProcessTokenBuckets(), settings)
    for _ in range(3):
        await throttle.admit("acme/ada", "10.0.0.1")
        await throttle.failed("acme/ada")
    with pytest.raises(RateLimitedError) as refused:
        await throttle.admit("acme/ada", "10.0.0.2")
    assert refused.value.retry_after is not None
    assert refused.value.retry_after > 0
    # Another account from the first address still gets its attempts...
    await throttle.admit("acme/bob", "10.0.0.1")
    await throttle.admit("acme/bob", "10.0.0.1")
    # ...until the address's budget (5 attempts, failed or not) is spent.
    with pytest.raises(RateLimitedError):
        await throttle.admit("acme/carol", "10.0.0.1")
    await throttle.admit("acme/carol", "10.0.0.3")
