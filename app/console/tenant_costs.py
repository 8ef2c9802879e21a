"""What each tenant's answers cost over a window, for the console's Metrics page.

Read from ``usage_records`` (``app.routing.usage.UsageLedger`` writes one row per
answer) rather than from the ``ragserve:cost_total`` counter, so the figure is the
whole deployment's and survives restarts, like the usage API's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import func, select

from app.routing.tables import UsageRow

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from datetime import datetime

    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

__all__ = ["cost_per_tenant"]


async def cost_per_tenant(
    sessions: async_sessionmaker[AsyncSession],
    *,
    since: datetime,
    until: datetime | None = None,
    tenant_id: str | None = None,
    names: Mapping[str, str] | None = None,
    limit: int = 10,
) -> dict[str, float]:
    """What each tenant's answers cost in ``[since, until)``, from ``usage_records``.

    Args:
        sessions: The app's session factory.
        since: The window's start (UTC-aware).
        until: Its end; no end when ``None``.
        tenant_id: Only this tenant: a tenant's admin must not see the others'.
        names: Tenant names by id, for the labels; an unnamed tenant shows its id.
        limit: Tenants shown by name, the costliest first; the rest are summed
            into one "N other tenants" entry.

    Returns:
        Cost by tenant label, costliest first.
    """
    total = func.sum(UsageRow.cost)
    query = select(UsageRow.tenant_id, total).where(UsageRow.created_at >= since)
    if until is not None:
        query = query.where(UsageRow.created_at < until)
    if tenant_id is not None:
        query = query.where(UsageRow.tenant_id == tenant_id)
    query = query.group_by(UsageRow.tenant_id).order_by(total.desc(), UsageRow.tenant_id)
    async with sessions() as session:
        rows = [(str(t), float(c or 0.0)) for t, c in (await session.execute(query)).all()]
    return _label_costs(rows, names or {}, limit)


def _label_costs(
    rows: Iterable[tuple[str, float]], names: Mapping[str, str], limit: int
) -> dict[str, float]:
    costs: dict[str, float] = {}
    others, rest = 0, 0.0
    for tenant, cost in rows:
        if len(costs) < limit:
            label = names.get(tenant, tenant)
            costs[label] = costs.get(label, 0.0) + cost
        else:
            others, rest = others + 1, rest + cost
    if others:
        costs[f"{others} other tenant{'s' if others > 1 else ''}"] = rest
    return costs
