"""Users, key roles and rate-limit overrides, and tenant scoping in SQL; on SQLite and PostgreSQL.

The last test watches every SQL statement the tenant-scoped services send and fails
on any read or write of a tenant-owned table whose WHERE clause does not name the
tenant, unless the same transaction already ran a tenant-filtered statement (the
ORM's UPDATE by primary key of a row it just loaded that way, or the messages of a
conversation it just checked). A service query that forgot its tenant filter shows
up here even when no test happened to look for the leak it allows.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import event, select

from conversation import (
    ApiKeyService,
    ConflictError,
    ConversationService,
    FeedbackService,
    InvalidInputError,
    NotFoundError,
    RateLimit,
    TenantInfo,
    TenantService,
    UserService,
    new_id,
)
from conversation.models import ApiKeyRow

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker


@pytest.fixture
def users(sessions: async_sessionmaker[AsyncSession]) -> UserService:
    return UserService(sessions)


async def test_create_list_get_update_user(users: UserService, tenant: TenantInfo) -> None:
    created = await users.create(tenant.id, " alice@idp ", "labeler", name="Alice")
    assert (created.subject, created.role, created.name, created.disabled) == (
        "alice@idp",
        "labeler",
        "Alice",
        False,
    )
    assert await users.get(tenant.id, created.id) == created
    second = await users.create(tenant.id, "bob")
    assert [u.id for u in await users.list(tenant.id)] == [created.id, second.id]

    disabled = await users.update(tenant.id, created.id, disabled=True, role="admin")
    assert (disabled.disabled, disabled.role, disabled.name) == (True, "admin", "Alice")
    again = await users.update(tenant.id, created.id, disabled=True)
    assert again.disabled_at == disabled.disabled_at, "disabling twice keeps the first time"
    enabled = await users.update(tenant.id, created.id, disabled=False)
    assert not enabled.disabled
    assert (await users.lookup(tenant.id, "alice@idp")) == enabled
    assert await users.lookup(tenant.id, "nobody") is None


async def test_duplicate_subject_is_a_conflict_and_leaves_the_first(
    users: UserService, tenant: TenantInfo, other_tenant: TenantInfo
) -> None:
    first = await users.create(tenant.id, "alice", "admin")
    with pytest.raises(ConflictError):
        await users.create(tenant.id, "alice", "user")
    assert await users.list(tenant.id) == [first]
    # The same subject in another tenant is another person.
    await users.create(other_tenant.id, "alice")


@pytest.mark.parametrize(
    ("subject", "role", "name"),
    [("", "user", None), ("   ", "user", None), ("x" * 256, "user", None), ("a", "root", None)],
)
async def test_bad_user_input_is_refused_and_stores_nothing(
    users: UserService, tenant: TenantInfo, subject: str, role: str, name: str | None
) -> None:
    with pytest.raises(InvalidInputError):
        await users.create(tenant.id, subject, role, name)
    assert await users.list(tenant.id) == []


async def test_unknown_tenant(users: UserService) -> None:
    with pytest.raises(NotFoundError):
        await users.create(new_id(), "alice")
    with pytest.raises(NotFoundError):
        await users.lookup(new_id(), "alice")


async def test_users_of_another_tenant_are_missing(
    users: UserService, tenant: TenantInfo, other_tenant: TenantInfo
) -> None:
    alice = await users.create(tenant.id, "alice")
    with pytest.raises(NotFoundError):
        await users.get(other_tenant.id, alice.id)
    with pytest.raises(NotFoundError):
        await users.update(other_tenant.id, alice.id, disabled=True)
    assert await users.list(other_tenant.id) == []
    assert await users.lookup(other_tenant.id, "alice") is None
    assert not (await users.get(tenant.id, alice.id)).disabled


async def test_key_role_and_rate_limit_survive_authentication(
    api_keys: ApiKeyService, tenant: TenantInfo
) -> None:
    created = await api_keys.create(
        tenant.id, "ops", ["chat", "platform:admin"], role="admin", rate_limit=RateLimit(5, 2.5)
    )
    found = await api_keys.authenticate(created.secret)
    assert found.role == "admin"
    assert found.rate_limit == RateLimit(burst=5, rate_per_s=2.5)
    assert found.scopes == ("chat", "platform:admin")
    plain = await api_keys.create(tenant.id)
    assert (await api_keys.authenticate(plain.secret)).role == "user"
    assert (await api_keys.authenticate(plain.secret)).rate_limit is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"role": "superuser"},
        {"rate_limit": RateLimit(0, 1.0)},
        {"rate_limit": RateLimit(10, 0.0)},
        {"rate_limit": RateLimit(10, float("nan"))},
        {"scopes": ["ok", "x" * 65]},
        {"scopes": [f"s{i}" for i in range(33)]},
    ],
)
async def test_bad_key_input_is_refused_and_stores_nothing(
    api_keys: ApiKeyService, tenant: TenantInfo, kwargs: dict[str, Any]
) -> None:
    with pytest.raises(InvalidInputError):
        await api_keys.create(tenant.id, "bad", **kwargs)
    assert await api_keys.list(tenant.id) == []


async def test_database_refuses_a_half_rate_limit(
    sessions: async_sessionmaker[AsyncSession], tenant: TenantInfo
) -> None:
    """Guards the CHECK constraint of migration 0004, which keeps overrides whole."""
    with pytest.raises(Exception, match=r"(?i)check|constraint"):
        async with sessions() as session, session.begin():
            session.add(
                ApiKeyRow(
                    tenant_id=tenant.id,
                    name="half",
                    prefix="rsk_x",
                    key_hash="0" * 64,
                    scopes=[],
                    rate_limit_burst=5,
                )
            )
    async with sessions() as session:
        assert (await session.scalars(select(ApiKeyRow))).all() == []


async def test_tenant_create_conflicts_and_lists(tenants: TenantService) -> None:
    created = await tenants.create("initech")
    with pytest.raises(ConflictError):
        await tenants.create(" initech ")
    with pytest.raises(InvalidInputError):
        await tenants.create("  ")
    assert [t.name for t in await tenants.list()] == ["initech"]
    assert await tenants.get(created.id) == created


# Tables whose every row belongs to a tenant, and statements that touch them.
_TENANT_TABLES = ("api_keys", "users", "conversations", "messages", "feedback")
_STATEMENT = re.compile(r"^\s*(SELECT|UPDATE|DELETE)\b", re.IGNORECASE)


@contextmanager
def _statements(sessions: async_sessionmaker[AsyncSession]) -> Iterator[list[tuple[Any, str]]]:
    """Every statement sent, with the connection (one per session transaction) it ran on."""
    engine = sessions.kw["bind"].sync_engine
    seen: list[tuple[Any, str]] = []

    def record(connection: Any, _cursor: Any, statement: str, *_: Any) -> None:
        # Holding the connection object keeps its id from being reused by another.
        seen.append((connection, statement))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def _touches_tenant_table(statement: str) -> bool:
    lowered = statement.lower()
    return bool(_STATEMENT.match(statement)) and any(
        re.search(rf"\b(from|update|join)\s+{table}\b", lowered) for table in _TENANT_TABLES
    )


def _tenant_filtered(statement: str) -> bool:
    parts = re.split(r"\bwhere\b", statement.lower(), maxsplit=1)
    where = parts[1] if len(parts) > 1 else ""
    return "tenant_id" in where or "tenants.id" in where


def _unscoped(seen: list[tuple[Any, str]]) -> list[str]:
    """Statements on tenant tables with no tenant filter in their transaction so far."""
    scoped: list[Any] = []
    offending = []
    for connection, statement in seen:
        if _tenant_filtered(statement):
            scoped.append(connection)
        elif _touches_tenant_table(statement) and not any(c is connection for c in scoped):
            offending.append(statement)
    return offending


async def test_every_tenant_scoped_query_filters_by_tenant(
    sessions: async_sessionmaker[AsyncSession], tenant: TenantInfo, other_tenant: TenantInfo
) -> None:
    users = UserService(sessions)
    keys = ApiKeyService(sessions)
    conversations = ConversationService(sessions)
    feedback = FeedbackService(sessions)
    with _statements(sessions) as seen:
        user = await users.create(tenant.id, "alice")
        await users.get(tenant.id, user.id)
        await users.list(tenant.id)
        await users.update(tenant.id, user.id, role="admin")
        await users.lookup(tenant.id, "alice")
        key = await keys.create(tenant.id)
        await keys.get(tenant.id, key.info.id)
        await keys.list(tenant.id)
        await keys.revoke(tenant.id, key.info.id)
        conversation = await conversations.create(tenant.id)
        message = await conversations.add_user_message(tenant.id, conversation.id, "hi")
        await conversations.get(tenant.id, conversation.id)
        await conversations.messages(tenant.id, conversation.id)
        await conversations.list(tenant.id)
        await conversations.get_message(tenant.id, message.id)
        await conversations.recent_messages(tenant.id, conversation.id, limit=4)
        answer = await conversations.record_assistant_message(
            tenant_id=tenant.id,
            conversation_id=conversation.id,
            message_id=new_id(),
            content="ok",
            status="complete",
            finish_reason="stop",
            model="m",
            model_version=None,
            sources=[],
            citations=[],
            usage={},
            timings={},
        )
        await feedback.add(tenant.id, answer.id, -1, "bad")
        await conversations.delete(tenant.id, conversation.id)
    offending = _unscoped(seen)
    assert seen, "the listener saw no SQL"
    assert offending == [], "\n\n".join(offending)


async def test_the_sql_check_catches_an_unscoped_query(
    sessions: async_sessionmaker[AsyncSession], tenant: TenantInfo
) -> None:
    """Guards the check above against passing vacuously: a key lookup by its secret's
    hash is unscoped by design (the key names its tenant), and it is seen as such."""
    keys = ApiKeyService(sessions)
    created = await keys.create(tenant.id)
    with _statements(sessions) as seen:
        await keys.authenticate(created.secret)
    assert any("api_keys.key_hash" in statement for statement in _unscoped(seen))
