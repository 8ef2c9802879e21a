"""Contract tests of TenantService on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC

import pytest

from conversation import InvalidInputError, NotFoundError, TenantService


async def test_ensure_is_idempotent(tenants: TenantService) -> None:
    first = await tenants.ensure("acme")
    again = await tenants.ensure("  acme ")

    assert again == first
    assert first.created_at.tzinfo is not None
    assert first.created_at.utcoffset() == UTC.utcoffset(None)
    assert await tenants.get(first.id) == first
    assert await tenants.get_by_name("acme") == first


async def test_concurrent_ensure_creates_one_tenant(tenants: TenantService) -> None:
    """Guards the race where two requests both miss the name and both insert."""
    results = await asyncio.gather(*(tenants.ensure("racy") for _ in range(8)))

    assert len({result.id for result in results}) == 1


async def test_unknown_tenant_is_not_found(tenants: TenantService) -> None:
    with pytest.raises(NotFoundError):
        await tenants.get("00000000-0000-4000-8000-000000000000")
    with pytest.raises(NotFoundError):
        await tenants.get_by_name("nobody")


async def test_empty_name_is_refused(tenants: TenantService) -> None:
    with pytest.raises(InvalidInputError):
        await tenants.ensure("   ")
