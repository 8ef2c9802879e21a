"""What answers cost: one usage record per answer, metrics, and per-tenant sums.

Cost is tokens times the answering version's prices, plus generation seconds
times its compute price (the embedded engine has no token bill, but it has a
machine). Records are keyed by the answer's message id, so recording twice counts
once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prometheus_client import Counter
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app.routing.tables import UsageRow

if TYPE_CHECKING:
    from datetime import datetime

    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from app.routing.specs import VersionSpec

__all__ = ["UsageLedger"]

COST = Counter(
    "ragserve:cost_total",
    "What answers cost at their version's prices, by model, version and tenant.",
    ["model", "version", "tenant"],
)
TOKENS = Counter(
    "ragserve:tokens_total",
    "Tokens of answered turns, by model, version, tenant and kind (prompt, completion).",
    ["model", "version", "tenant", "kind"],
)


class UsageLedger:
    """Records each answer's usage and sums it per tenant and period."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def record(
        self,
        *,
        message_id: str,
        tenant_id: str,
        version: VersionSpec,
        prompt_tokens: int,
        completion_tokens: int,
        compute_seconds: float,
    ) -> float:
        """Store one answer's usage, export it, and return its cost."""
        cost = version.cost(prompt_tokens, completion_tokens, compute_seconds)
        labels = (version.model, version.version, tenant_id)
        try:
            async with self._sessions() as session, session.begin():
                session.add(
                    UsageRow(
                        message_id=message_id,
                        tenant_id=tenant_id,
                        model=version.model,
                        version=version.version,
                        prompt_tokens=prompt_tokens,
                        completion_tokens=completion_tokens,
                        compute_seconds=compute_seconds,
                        cost=cost,
                    )
                )
        except IntegrityError:
            return cost  # recorded already: count it once
        COST.labels(*labels).inc(cost)
        TOKENS.labels(*labels, "prompt").inc(prompt_tokens)
        TOKENS.labels(*labels, "completion").inc(completion_tokens)
        return cost

    async def summary(self, tenant_id: str, since: datetime, until: datetime) -> dict[str, Any]:
        """Turns, tokens and cost of ``tenant_id`` in ``[since, until)``, by version."""
        query = (
            select(
                UsageRow.model,
                UsageRow.version,
                func.count(),
                func.coalesce(func.sum(UsageRow.prompt_tokens), 0),
                func.coalesce(func.sum(UsageRow.completion_tokens), 0),
                func.coalesce(func.sum(UsageRow.compute_seconds), 0.0),
                func.coalesce(func.sum(UsageRow.cost), 0.0),
            )
            .where(
                UsageRow.tenant_id == tenant_id,
                UsageRow.created_at >= since,
                UsageRow.created_at < until,
            )
            .group_by(UsageRow.model, UsageRow.version)
            .order_by(UsageRow.model, UsageRow.version)
        )
        async with self._sessions() as session:
            rows = (await session.execute(query)).all()
        by_version = [
            {
                "model": model,
                "version": version,
                "turns": int(turns),
                "prompt_tokens": int(prompt),
                "completion_tokens": int(completion),
                "compute_seconds": round(float(seconds), 3),
                "cost": round(float(cost), 6),
            }
            for model, version, turns, prompt, completion, seconds, cost in rows
        ]
        return {
            "tenant_id": tenant_id,
            "since": since,
            "until": until,
            "turns": sum(int(turns) for _, _, turns, *_ in rows),
            "prompt_tokens": sum(int(row[3]) for row in rows),
            "completion_tokens": sum(int(row[4]) for row in rows),
            "cost": round(sum(float(row[6]) for row in rows), 6),
            "by_version": by_version,
        }
