"""The labeling queue: assistant messages flagged by users or by safety filters."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from safety.models import LabelingTaskRow
from safety.types import Action, Verdict

Source = Literal["user_feedback", "safety"]


@dataclass(frozen=True, slots=True)
class LabelingTask:
    id: str
    tenant_id: str
    message_id: str
    conversation_id: str | None
    source: str
    reason: str
    category: str
    status: str
    created_at: datetime


class TaskNotFoundError(LookupError):
    """No such task for this tenant."""


class LabelingQueue:
    """Open, list and close labeling tasks, always within one tenant."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def enqueue(
        self,
        tenant_id: str,
        message_id: str,
        *,
        source: Source,
        reason: str,
        category: str,
        conversation_id: str | None = None,
    ) -> LabelingTask:
        """Open a task for a message."""
        row = LabelingTaskRow(
            tenant_id=tenant_id,
            message_id=message_id,
            conversation_id=conversation_id,
            source=source,
            reason=reason[:1000],
            category=category,
            status="open",
        )
        async with self._sessions.begin() as session:
            session.add(row)
        return _task(row)

    async def enqueue_flags(
        self,
        tenant_id: str,
        message_id: str,
        verdicts: Sequence[Verdict],
        *,
        conversation_id: str | None = None,
    ) -> list[LabelingTask]:
        """Open one task per flagging (or refusing) verdict of a message."""
        tasks = []
        for v in verdicts:
            if v.action in (Action.FLAG, Action.REFUSE):
                tasks.append(
                    await self.enqueue(
                        tenant_id,
                        message_id,
                        source="safety",
                        reason=f"{v.filter}: {v.reason}",
                        category=v.category.value,
                        conversation_id=conversation_id,
                    )
                )
        return tasks

    async def list_open(self, tenant_id: str, limit: int = 50) -> list[LabelingTask]:
        """The tenant's open tasks, oldest first."""
        query = (
            select(LabelingTaskRow)
            .where(LabelingTaskRow.tenant_id == tenant_id, LabelingTaskRow.status == "open")
            .order_by(LabelingTaskRow.created_at, LabelingTaskRow.id)
            .limit(max(1, min(limit, 500)))
        )
        async with self._sessions() as session:
            return [_task(r) for r in (await session.scalars(query)).all()]

    async def complete(self, tenant_id: str, task_id: str) -> LabelingTask:
        """Mark a task done.

        Raises:
            TaskNotFoundError: No such task for this tenant.
        """
        async with self._sessions.begin() as session:
            row = await session.get(LabelingTaskRow, task_id)
            if row is None or row.tenant_id != tenant_id:
                raise TaskNotFoundError(task_id)
            row.status = "done"
        return _task(row)


def _task(row: LabelingTaskRow) -> LabelingTask:
    return LabelingTask(
        id=row.id,
        tenant_id=row.tenant_id,
        message_id=row.message_id,
        conversation_id=row.conversation_id,
        source=row.source,
        reason=row.reason,
        category=row.category,
        status=row.status,
        created_at=row.created_at,
    )
