"""Verdicts kept: stored with the message, counted, and logged as audit events.

An audit event says who (tenant, user), when, which rule, what it decided, and
never the text: reasons name rules and counts, not content.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import structlog
from sqlalchemy import select

from kernel.orm import utcnow
from safety.metrics import count_verdicts
from safety.models import SafetyVerdictRow
from safety.types import Action, Category, Stage, Verdict

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

log = structlog.get_logger("safety.audit")


@dataclass(frozen=True, slots=True)
class StoredVerdict:
    """A verdict as stored."""

    id: str
    tenant_id: str
    message_id: str | None
    verdict: Verdict
    created_at: datetime


def audit_event(
    verdict: Verdict, *, tenant_id: str, user_id: str | None, message_id: str | None
) -> dict[str, object]:
    """The audit record of one verdict (no text from the message)."""
    return {
        "event": "safety.verdict",
        "tenant_id": tenant_id,
        "user_id": user_id,
        "message_id": message_id,
        "at": utcnow().isoformat(),
        "stage": verdict.stage.value,
        "filter": verdict.filter,
        "category": verdict.category.value,
        "action": verdict.action.value,
        "score": round(verdict.score, 3),
        "rule": verdict.reason,
    }


class VerdictStore:
    """Stores verdicts, counts them in metrics, and writes their audit events."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def record(
        self,
        tenant_id: str,
        verdicts: Sequence[Verdict],
        *,
        message_id: str | None = None,
        user_id: str | None = None,
    ) -> list[StoredVerdict]:
        """Store, count and audit every verdict that fired; allow verdicts are skipped."""
        fired = [v for v in verdicts if v.fired]
        if not fired:
            return []
        rows = [
            SafetyVerdictRow(
                tenant_id=tenant_id,
                message_id=message_id,
                stage=v.stage.value,
                filter=v.filter,
                category=v.category.value,
                action=v.action.value,
                score=float(v.score),
                reason=v.reason[:1000],
            )
            for v in fired
        ]
        async with self._sessions.begin() as session:
            session.add_all(rows)
        count_verdicts(fired)
        for v in fired:
            log.info(**audit_event(v, tenant_id=tenant_id, user_id=user_id, message_id=message_id))
        return [_stored(row) for row in rows]

    async def for_message(self, tenant_id: str, message_id: str) -> list[StoredVerdict]:
        """The verdicts stored with a message, oldest first (another tenant's: none)."""
        query = (
            select(SafetyVerdictRow)
            .where(SafetyVerdictRow.tenant_id == tenant_id)
            .where(SafetyVerdictRow.message_id == message_id)
            .order_by(SafetyVerdictRow.created_at, SafetyVerdictRow.id)
        )
        async with self._sessions() as session:
            rows = (await session.scalars(query)).all()
        return [_stored(row) for row in rows]


def _stored(row: SafetyVerdictRow) -> StoredVerdict:
    verdict = Verdict(
        filter=row.filter,
        stage=Stage(row.stage),
        category=Category(row.category),
        action=Action(row.action),
        score=row.score,
        reason=row.reason,
    )
    return StoredVerdict(row.id, row.tenant_id, row.message_id, verdict, row.created_at)
