"""Contract tests of ApiKeyService on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select, update

from conversation import ApiKeyService, AuthenticationError, NotFoundError, TenantInfo
from conversation.models import ApiKeyRow

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker


async def test_create_then_authenticate(api_keys: ApiKeyService, tenant: TenantInfo) -> None:
    created = await api_keys.create(tenant.id, name="ci", scopes=("chat", "documents"))

    assert created.secret.startswith("rsk_")
    assert created.info.prefix == created.secret[: len(created.info.prefix)]
    assert created.info.scopes == ("chat", "documents")
    found = await api_keys.authenticate(created.secret)
    assert found.id == created.info.id
    assert found.tenant_id == tenant.id
    assert found.last_used_at is not None


async def test_only_the_hash_is_stored(
    api_keys: ApiKeyService, tenant: TenantInfo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    created = await api_keys.create(tenant.id)

    async with sessions() as session:
        row = await session.scalar(select(ApiKeyRow).where(ApiKeyRow.id == created.info.id))
    assert row is not None
    assert row.key_hash == hashlib.sha256(created.secret.encode()).hexdigest()
    stored = [str(getattr(row, column.key)) for column in ApiKeyRow.__table__.columns]
    assert all(created.secret not in value for value in stored)


@pytest.mark.parametrize("secret", ["", "rsk_wrong", "not-even-prefixed"])
async def test_wrong_key_fails(api_keys: ApiKeyService, tenant: TenantInfo, secret: str) -> None:
    await api_keys.create(tenant.id)

    with pytest.raises(AuthenticationError):
        await api_keys.authenticate(secret)


async def test_revoked_key_fails(api_keys: ApiKeyService, tenant: TenantInfo) -> None:
    created = await api_keys.create(tenant.id)

    revoked = await api_keys.revoke(tenant.id, created.info.id)

    assert revoked.revoked
    with pytest.raises(AuthenticationError):
        await api_keys.authenticate(created.secret)
    assert [key.id for key in await api_keys.list(tenant.id)] == [created.info.id]


async def test_last_used_is_written_at_most_once_a_minute(
    api_keys: ApiKeyService, tenant: TenantInfo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Guards against a database write on every authenticated request."""
    created = await api_keys.create(tenant.id)
    first = await api_keys.authenticate(created.secret)
    second = await api_keys.authenticate(created.secret)
    assert second.last_used_at == first.last_used_at

    assert first.last_used_at is not None
    stale = first.last_used_at - timedelta(minutes=2)
    async with sessions() as session, session.begin():
        await session.execute(
            update(ApiKeyRow).where(ApiKeyRow.id == created.info.id).values(last_used_at=stale)
        )
    third = await api_keys.authenticate(created.secret)
    assert third.last_used_at is not None
    assert third.last_used_at > stale


async def test_keys_are_per_tenant(
    api_keys: ApiKeyService, tenant: TenantInfo, other_tenant: TenantInfo
) -> None:
    created = await api_keys.create(tenant.id)

    assert await api_keys.list(other_tenant.id) == []
    with pytest.raises(NotFoundError):
        await api_keys.revoke(other_tenant.id, created.info.id)
    assert (await api_keys.authenticate(created.secret)).tenant_id == tenant.id
