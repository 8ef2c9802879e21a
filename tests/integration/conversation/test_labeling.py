"""The labeling queue on SQLite and PostgreSQL (migrated to head).

The flags come from ``safety.Verdict``, as the app passes them: the queue reads
them through ``conversation.FlagVerdict`` without importing safety.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import pytest

from conversation import LabelingQueue, TaskNotFoundError
from safety import Action, Category, Stage, Verdict

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

FLAG = Verdict("harmful", Stage.OUTPUT, Category.VIOLENCE, Action.FLAG, 0.85, "threat")
REDACT = Verdict("pii", Stage.OUTPUT, Category.PII, Action.REDACT, 1.0, "EMAIL x1")


def _ids() -> tuple[str, str]:
    return str(uuid.uuid4()), str(uuid.uuid4())


async def test_flags_open_labeling_tasks_that_labelers_close(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    tenant, message = _ids()
    queue = LabelingQueue(sessions)
    tasks = await queue.enqueue_flags(tenant, message, [FLAG, REDACT], conversation_id="c1")
    assert len(tasks) == 1
    assert tasks[0].source == "safety"
    assert tasks[0].category == "violence"
    feedback = await queue.enqueue(
        tenant, message, source="user_feedback", reason="thumbs down", category="hallucination"
    )
    assert [t.id for t in await queue.list_open(tenant)] == [tasks[0].id, feedback.id]
    done = await queue.complete(tenant, tasks[0].id)
    assert done.status == "done"
    assert [t.id for t in await queue.list_open(tenant)] == [feedback.id]


async def test_completing_another_tenants_task_is_not_found(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    tenant, message = _ids()
    queue = LabelingQueue(sessions)
    task = await queue.enqueue(tenant, message, source="safety", reason="r", category="pii")
    with pytest.raises(TaskNotFoundError):
        await queue.complete(str(uuid.uuid4()), task.id)
