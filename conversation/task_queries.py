"""The SQL behind the labeling queue: a tenant's task row, the filters of listings,
"next task" and exports, and the conversation a labeler reads around an answer.

Every function takes an open session (or builds a statement) and leaves
transactions to the service.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Select, and_, or_, select

from conversation.errors import TaskNotFoundError
from conversation.models import LabelingTaskRow, MessageRow

if TYPE_CHECKING:
    from collections.abc import Iterable

    from sqlalchemy.ext.asyncio import AsyncSession

    from conversation.types import MessageInfo, TaskFilters

_S = TypeVar("_S", bound=Select[*tuple[Any, ...]])

HISTORY_MESSAGES = 20
"""Earlier messages shown with an answer (what a turn loads as its history at most)."""


async def task_row(session: AsyncSession, tenant_id: str, task_id: str) -> LabelingTaskRow:
    """The tenant's task; ``TaskNotFoundError`` for any other (another tenant's too)."""
    row = await session.scalar(
        select(LabelingTaskRow).where(
            LabelingTaskRow.id == task_id, LabelingTaskRow.tenant_id == tenant_id
        )
    )
    if row is None:
        raise TaskNotFoundError("labeling task not found")
    return row


def filtered(query: _S, filters: TaskFilters, *, dates: bool = True, status: bool = True) -> _S:
    """``query`` (over ``labeling_tasks``) narrowed by ``filters``.

    Args:
        query: A select that has ``labeling_tasks`` in its FROM.
        filters: What to keep; a ``None`` field keeps everything.
        dates: Bound the task's ``created_at`` by ``since`` and ``until`` (an
            export bounds its labels' instead).
        status: Keep ``filters.status`` only (an export and "next task" set their own).
    """
    task = LabelingTaskRow
    if filters.source is not None:
        query = query.where(task.source == filters.source)
    if filters.collection is not None:
        query = query.where(task.collection == filters.collection)
    if filters.model_version is not None:
        query = query.where(task.model_version == filters.model_version)
    if dates and filters.since is not None:
        query = query.where(task.created_at >= filters.since)
    if dates and filters.until is not None:
        query = query.where(task.created_at < filters.until)
    if status and filters.status is not None:
        query = query.where(task.status == filters.status)
    return query


def queue_order(query: _S) -> _S:
    """The queue's order: highest priority first, then oldest first (ties by id)."""
    task = LabelingTaskRow
    return query.order_by(task.priority.desc(), task.created_at, task.id)


async def answer_row(session: AsyncSession, tenant_id: str, message_id: str) -> MessageRow | None:
    """The tenant's message, or ``None`` when it is gone (its conversation deleted)."""
    return await session.scalar(
        select(MessageRow).where(MessageRow.id == message_id, MessageRow.tenant_id == tenant_id)
    )


async def conversation_until(
    session: AsyncSession, answer: MessageRow, limit: int = HISTORY_MESSAGES + 2
) -> list[MessageInfo]:
    """The last ``limit`` messages of ``answer``'s conversation up to and including
    it, oldest first."""
    rows = await session.scalars(
        select(MessageRow)
        .where(MessageRow.conversation_id == answer.conversation_id, _not_after(answer))
        .order_by(MessageRow.created_at.desc(), MessageRow.id.desc())
        .limit(limit)
    )
    return [row.to_info() for row in reversed(rows.all())]


async def conversations_until(
    session: AsyncSession, answers: Iterable[MessageRow]
) -> dict[str, list[MessageInfo]]:
    """``conversation_until`` for many answers in one query, by answer id.

    NOTE: one query for a page of an export rather than one per answer; it reads
    the answers' whole conversations, which a turn's history bounds in practice.
    """
    answers = list(answers)
    if not answers:
        return {}
    rows = await session.scalars(
        select(MessageRow)
        .where(MessageRow.conversation_id.in_({a.conversation_id for a in answers}))
        .order_by(MessageRow.conversation_id, MessageRow.created_at, MessageRow.id)
    )
    by_conversation: dict[str, list[MessageRow]] = {}
    for row in rows.all():
        by_conversation.setdefault(row.conversation_id, []).append(row)
    found: dict[str, list[MessageInfo]] = {}
    for answer in answers:
        messages = by_conversation.get(answer.conversation_id, [])
        upto = next((i for i, m in enumerate(messages) if m.id == answer.id), None)
        if upto is not None:
            kept = messages[max(0, upto - HISTORY_MESSAGES - 1) : upto + 1]
            found[answer.id] = [m.to_info() for m in kept]
    return found


def _not_after(answer: MessageRow) -> Any:
    """Messages at or before ``answer`` in its conversation's order."""
    return or_(
        MessageRow.created_at < answer.created_at,
        and_(MessageRow.created_at == answer.created_at, MessageRow.id <= answer.id),
    )
