"""The labeling queue: assistant messages flagged by users or by safety filters.

The queue does not know the safety package (domain packages never import each
other): ``enqueue_flags`` takes any verdicts shaped like ``FlagVerdict``, which
``safety.Verdict`` is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, Protocol

from sqlalchemy import select

from conversation.errors import TaskNotFoundError
from conversation.models import LabelingTaskRow

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from conversation.types import LabelingTask

Source = Literal["user_feedback", "safety"]

_QUEUED_ACTIONS = ("flag", "refuse")
"""Verdict actions that queue the message for a labeler."""
MAX_REASON_CHARS = 1000


class FlagVerdict(Protocol):
    """What the queue reads of one filter's verdict (``safety.Verdict`` has it all)."""

    @property
    def filter(self) -> str: ...

    @property
    def action(self) -> str: ...

    @property
    def category(self) -> str: ...

    @property
    def reason(self) -> str: ...


class LabelingQueue:
    """Open, list and close labeling tasks, always within one tenant."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        """Args:
        sessions: Sessions on the database of record.
        """
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
        """Opens a task for a message.

        Args:
            tenant_id: The message's tenant.
            message_id: The message to review.
            source: Who asked for the review.
            reason: Why, for the labeler (cut to ``MAX_REASON_CHARS``).
            category: What kind of problem (a safety category, or ``user_report``).
            conversation_id: The message's conversation, when known.

        Returns:
            The open task.
        """
        row = LabelingTaskRow(
            tenant_id=tenant_id,
            message_id=message_id,
            conversation_id=conversation_id,
            source=source,
            reason=reason[:MAX_REASON_CHARS],
            category=category,
            status="open",
        )
        async with self._sessions.begin() as session:
            session.add(row)
        return row.to_task()

    async def enqueue_flags(
        self,
        tenant_id: str,
        message_id: str,
        verdicts: Sequence[FlagVerdict],
        *,
        conversation_id: str | None = None,
    ) -> list[LabelingTask]:
        """Opens one task per flagging (or refusing) verdict of a message.

        Returns:
            The tasks opened, one per such verdict, in order.
        """
        tasks = []
        for verdict in verdicts:
            if verdict.action in _QUEUED_ACTIONS:
                tasks.append(
                    await self.enqueue(
                        tenant_id,
                        message_id,
                        source="safety",
                        reason=f"{verdict.filter}: {verdict.reason}",
                        # NOTE: str() gives a StrEnum's value, not "Category.PII".
                        category=str(verdict.category),
                        conversation_id=conversation_id,
                    )
                )
        return tasks

    async def list_open(self, tenant_id: str, limit: int = 50) -> list[LabelingTask]:
        """The tenant's open tasks, oldest first (at most ``limit``, 1 to 500)."""
        query = (
            select(LabelingTaskRow)
            .where(LabelingTaskRow.tenant_id == tenant_id, LabelingTaskRow.status == "open")
            .order_by(LabelingTaskRow.created_at, LabelingTaskRow.id)
            .limit(max(1, min(limit, 500)))
        )
        async with self._sessions() as session:
            return [row.to_task() for row in (await session.scalars(query)).all()]

    async def complete(self, tenant_id: str, task_id: str) -> LabelingTask:
        """Marks a task done.

        Raises:
            TaskNotFoundError: No such task for this tenant.
        """
        async with self._sessions.begin() as session:
            row = await session.get(LabelingTaskRow, task_id)
            if row is None or row.tenant_id != tenant_id:
                raise TaskNotFoundError(task_id)
            row.status = "done"
        return row.to_task()
