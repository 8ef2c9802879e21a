"""The labeling queue: assistant messages waiting for labelers' reviews.

Tasks are opened by users (a thumbs-down, a report), by safety filters, and by
turns whose answer deserves a look (chunks withheld from it, weak retrieval);
each has a priority by who opened it. ``LabelingQueue`` is the one service the
API and the console use; its parts live by idea: leases in
``conversation.task_leases``, labels and the overlap in ``conversation.labels``,
the JSONL export in ``conversation.label_export``.

The queue does not know the safety package (domain packages never import each
other): ``enqueue_flags`` takes any verdicts shaped like ``FlagVerdict``, which
``safety.Verdict`` is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from conversation.errors import ConflictError, InvalidInputError
from conversation.label_export import LabelExport, SystemPrompt, plain_system_prompt
from conversation.labels import LabelBook
from conversation.models import LabelingTaskRow
from conversation.task_leases import TaskLeases
from conversation.task_queries import (
    answer_row,
    conversation_until,
    filtered,
    queue_order,
    task_row,
)
from conversation.types import LABELING_SOURCES, LabelingSource, TaskContext, TaskFilters

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from conversation.types import LabelingTask, MessageInfo

PRIORITIES: dict[LabelingSource, int] = {
    "safety": 90,
    "user_report": 80,
    "user_feedback": 70,
    "withheld": 50,
    "low_retrieval": 30,
}
"""A task's priority by its source when the caller names none (higher first)."""
_QUEUED_ACTIONS = ("flag", "refuse")
"""Verdict actions that queue the message for a labeler."""
MAX_REASON_CHARS = 1000
MAX_PAGE = 500


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


def answer_collection(answer: MessageInfo) -> str | None:
    """The collection of an answer's best source, ``None`` without sources."""
    for source in answer.sources:
        collection = source.get("collection")
        if isinstance(collection, str):
            return collection
    return None


class LabelingQueue(TaskLeases, LabelBook, LabelExport):
    """Open, list, lease, label, export and close labeling tasks, always within one tenant."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        labels_wanted: int = 1,
        system_prompt: SystemPrompt = plain_system_prompt,
    ) -> None:
        """Args:
        sessions: Sessions on the database of record.
        labels_wanted: Labels (by different labelers) a new task takes (the overlap).
        system_prompt: Renders an exported prompt's system message from an
            answer's stored sources.
        """
        if labels_wanted < 1:
            raise ValueError("a task wants at least one label")
        self._sessions = sessions
        self._labels_wanted = labels_wanted
        self._system_prompt = system_prompt

    async def enqueue(
        self,
        tenant_id: str,
        message_id: str,
        *,
        source: LabelingSource,
        reason: str,
        category: str,
        conversation_id: str | None = None,
        priority: int | None = None,
        model_version: str | None = None,
        collection: str | None = None,
    ) -> LabelingTask:
        """Opens a task for a message, or returns the open one of the same source.

        Args:
            tenant_id: The message's tenant.
            message_id: The message to review.
            source: Who asked for the review.
            reason: Why, for the labeler (cut to ``MAX_REASON_CHARS``).
            category: What kind of problem (a safety category, a report's reason...).
            conversation_id: The message's conversation, when known.
            priority: Its place in the queue (higher first); by default ``PRIORITIES``.
            model_version: The version of the model that answered.
            collection: The collection the turn searched (or its best source's).

        Returns:
            The open task.

        Raises:
            InvalidInputError: An unknown source.
        """
        if source not in LABELING_SOURCES:
            raise InvalidInputError(f"unknown labeling source {source!r}")
        existing = await self._open_task(tenant_id, message_id, source)
        if existing is not None:
            return existing
        row = LabelingTaskRow(
            tenant_id=tenant_id,
            message_id=message_id,
            conversation_id=conversation_id,
            source=source,
            reason=reason[:MAX_REASON_CHARS],
            category=category[:32],
            status="open",
            priority=PRIORITIES[source] if priority is None else priority,
            labels_wanted=self._labels_wanted,
            labels_done=0,
            model_version=model_version,
            collection=collection,
        )
        try:
            async with self._sessions.begin() as session:
                session.add(row)
        except IntegrityError as exc:
            # NOTE: the same message and source queued at once by two callers; the
            # unique index let one through, and that task is the answer.
            existing = await self._open_task(tenant_id, message_id, source)
            if existing is None:
                raise ConflictError("the task could not be opened; retry") from exc
            return existing
        return row.to_task()

    async def enqueue_answer(
        self,
        answer: MessageInfo,
        *,
        source: LabelingSource,
        reason: str,
        category: str,
        collection: str | None = None,
    ) -> LabelingTask:
        """``enqueue`` for an assistant message: its conversation and model version
        are the message's, its collection ``collection`` or its best source's."""
        return await self.enqueue(
            answer.tenant_id,
            answer.id,
            source=source,
            reason=reason,
            category=category,
            conversation_id=answer.conversation_id,
            model_version=answer.model_version,
            collection=collection or answer_collection(answer),
        )

    async def enqueue_flags(
        self,
        answer: MessageInfo,
        verdicts: Sequence[FlagVerdict],
        *,
        collection: str | None = None,
    ) -> LabelingTask | None:
        """Opens one ``safety`` task for the flagging (or refusing) verdicts of an
        answer, its reason naming each; ``None`` when no verdict flagged it."""
        flags = [v for v in verdicts if v.action in _QUEUED_ACTIONS]
        if not flags:
            return None
        return await self.enqueue_answer(
            answer,
            source="safety",
            reason="; ".join(f"{v.filter}: {v.reason}" for v in flags),
            # NOTE: str() gives a StrEnum's value, not "Category.PII".
            category=str(flags[0].category),
            collection=collection,
        )

    async def get(self, tenant_id: str, task_id: str) -> LabelingTask:
        """One of the tenant's tasks.

        Raises:
            TaskNotFoundError: No such task for this tenant (another tenant's included).
        """
        async with self._sessions() as session:
            return (await task_row(session, tenant_id, task_id)).to_task()

    async def list_tasks(
        self,
        tenant_id: str,
        filters: TaskFilters | None = None,
        *,
        limit: int = 50,
        offset: int = 0,
    ) -> list[LabelingTask]:
        """A page of the tenant's tasks in queue order: highest priority, then oldest first.

        Args:
            tenant_id: Whose tasks.
            filters: Which tasks; ``None`` is the open ones.
            limit: Tasks on the page, 1 to ``MAX_PAGE``.
            offset: Tasks skipped before the page.
        """
        if not 1 <= limit <= MAX_PAGE or offset < 0:
            raise InvalidInputError(f"a page holds 1 to {MAX_PAGE} tasks from an offset >= 0")
        query = select(LabelingTaskRow).where(LabelingTaskRow.tenant_id == tenant_id)
        query = queue_order(filtered(query, filters or TaskFilters())).limit(limit).offset(offset)
        async with self._sessions() as session:
            return [row.to_task() for row in (await session.scalars(query)).all()]

    async def count_tasks(self, tenant_id: str, filters: TaskFilters | None = None) -> int:
        """How many of the tenant's tasks ``list_tasks`` pages through."""
        query = select(func.count()).select_from(LabelingTaskRow)
        query = filtered(
            query.where(LabelingTaskRow.tenant_id == tenant_id), filters or TaskFilters()
        )
        async with self._sessions() as session:
            return int(await session.scalar(query) or 0)

    async def facets(self, tenant_id: str) -> dict[str, list[str]]:
        """What the tenant's tasks can be filtered by: their distinct ``sources``,
        ``collections`` and ``model_versions``, sorted, for filter menus."""
        found: dict[str, list[str]] = {}
        async with self._sessions() as session:
            for name, column in (
                ("sources", LabelingTaskRow.source),
                ("collections", LabelingTaskRow.collection),
                ("model_versions", LabelingTaskRow.model_version),
            ):
                values = await session.scalars(
                    select(column)
                    .where(LabelingTaskRow.tenant_id == tenant_id, column.is_not(None))
                    .distinct()
                )
                found[name] = sorted(str(v) for v in values.all())
        return found

    async def task_context(self, tenant_id: str, task_id: str) -> TaskContext:
        """What a labeler reviews: the task, its conversation up to and including the
        answer (the last ``HISTORY_MESSAGES`` before the question at most), the answer.

        Raises:
            TaskNotFoundError: No such task for this tenant.
        """
        async with self._sessions() as session:
            row = await task_row(session, tenant_id, task_id)
            answer = await answer_row(session, tenant_id, row.message_id)
            messages = [] if answer is None else await conversation_until(session, answer)
        return TaskContext(
            task=row.to_task(), messages=messages, answer=messages[-1] if messages else None
        )

    async def list_open(self, tenant_id: str, limit: int = 50) -> list[LabelingTask]:
        """The tenant's open tasks, oldest first (at most ``limit``, 1 to 500)."""
        query = (
            select(LabelingTaskRow)
            .where(LabelingTaskRow.tenant_id == tenant_id, LabelingTaskRow.status == "open")
            .order_by(LabelingTaskRow.created_at, LabelingTaskRow.id)
            .limit(max(1, min(limit, MAX_PAGE)))
        )
        async with self._sessions() as session:
            return [row.to_task() for row in (await session.scalars(query)).all()]

    async def complete(self, tenant_id: str, task_id: str) -> LabelingTask:
        """Marks a task done by hand, whatever its labels (its lease ends).

        Raises:
            TaskNotFoundError: No such task for this tenant.
        """
        async with self._sessions.begin() as session:
            row = await task_row(session, tenant_id, task_id)
            row.status = "done"
            row.lease_owner = row.lease_until = None
        return row.to_task()

    async def _open_task(self, tenant_id: str, message_id: str, source: str) -> LabelingTask | None:
        async with self._sessions() as session:
            row = await session.scalar(
                select(LabelingTaskRow).where(
                    LabelingTaskRow.tenant_id == tenant_id,
                    LabelingTaskRow.message_id == message_id,
                    LabelingTaskRow.source == source,
                    LabelingTaskRow.status == "open",
                )
            )
        return None if row is None else row.to_task()
