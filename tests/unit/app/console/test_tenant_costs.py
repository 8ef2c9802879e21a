"""Cost per tenant over a window, summed in SQL from ``usage_records``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from app.console.tenant_costs import cost_per_tenant
from app.routing.tables import UsageRow
from kernel.db import create_engine, session_factory
from kernel.orm import Base

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
HOUR_AGO = NOW - timedelta(hours=1)


@pytest.fixture
async def sessions(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'usage.db'}")
    async with engine.begin() as connection:
        await connection.run_sync(
            Base.metadata.create_all, tables=[Base.metadata.tables["usage_records"]]
        )
    yield session_factory(engine)
    await engine.dispose()


async def _record(
    sessions: async_sessionmaker[AsyncSession], tenant: str, cost: float, at: datetime
) -> None:
    async with sessions() as session, session.begin():
        session.add(
            UsageRow(
                message_id=f"{tenant}-{cost}-{at.timestamp()}",
                tenant_id=tenant,
                model="m",
                version="v1",
                prompt_tokens=1,
                completion_tokens=1,
                compute_seconds=0.1,
                cost=cost,
                created_at=at,
            )
        )


async def test_sums_each_tenant_in_the_window_costliest_first(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await _record(sessions, "t-a", 1.0, NOW - timedelta(minutes=5))
    await _record(sessions, "t-a", 0.5, NOW - timedelta(minutes=50))
    await _record(sessions, "t-b", 2.0, NOW - timedelta(minutes=1))
    await _record(sessions, "t-b", 100.0, NOW - timedelta(hours=2))  # before the window
    await _record(sessions, "t-c", 7.0, NOW)  # at ``until``: outside
    costs = await cost_per_tenant(sessions, since=HOUR_AGO, until=NOW, names={"t-a": "Acme <Corp>"})
    assert list(costs.items()) == [("t-b", 2.0), ("Acme <Corp>", 1.5)]


async def test_one_tenant_only_for_a_tenant_admin(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Guards tenant isolation: a tenant's admin sees no other tenant's cost or name."""
    await _record(sessions, "t-a", 1.0, NOW - timedelta(minutes=5))
    await _record(sessions, "t-b", 2.0, NOW - timedelta(minutes=5))
    assert await cost_per_tenant(sessions, since=HOUR_AGO, tenant_id="t-a") == {"t-a": 1.0}


async def test_tenants_past_the_limit_are_summed_into_one_entry(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    for i in range(5):
        await _record(sessions, f"t-{i}", float(i + 1), NOW - timedelta(minutes=i + 1))
    costs = await cost_per_tenant(sessions, since=HOUR_AGO, limit=2)
    assert costs == {"t-4": 5.0, "t-3": 4.0, "3 other tenants": 6.0}


async def test_no_usage_gives_no_entry(sessions: async_sessionmaker[AsyncSession]) -> None:
    assert await cost_per_tenant(sessions, since=HOUR_AGO) == {}
