"""The labeling queue's contents on SQLite and PostgreSQL (migrated to head): opening
tasks, their priorities, listing, filters, facets and what a labeler reads.

The flags come from ``safety.Verdict``, as the app passes them: the queue reads
them through ``conversation.FlagVerdict`` without importing safety.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING

import pytest

from conversation import (
    PRIORITIES,
    ConversationService,
    InvalidInputError,
    LabelingQueue,
    TaskFilters,
    TaskNotFoundError,
    TenantInfo,
)
from kernel.orm import utcnow
from safety import Action, Category, Stage, Verdict

if TYPE_CHECKING:
    from tests.integration.conversation.conftest import Answer

FLAG = Verdict("harmful", Stage.OUTPUT, Category.VIOLENCE, Action.FLAG, 0.85, "threat")
REFUSE = Verdict("pii", Stage.OUTPUT, Category.PII, Action.REFUSE, 1.0, "SSN x1")
REDACT = Verdict("pii", Stage.OUTPUT, Category.PII, Action.REDACT, 1.0, "EMAIL x1")


def _id() -> str:
    return str(uuid.uuid4())


async def test_flags_open_one_safety_task_that_labelers_close(
    labeling: LabelingQueue, answer: Answer, tenant: TenantInfo
) -> None:
    flagged = await answer()
    task = await labeling.enqueue_flags(flagged, [FLAG, REDACT, REFUSE])
    assert task is not None
    assert (task.source, task.category, task.priority) == ("safety", "violence", 90)
    assert task.reason == "harmful: threat; pii: SSN x1"
    assert (task.model_version, task.collection) == ("v1", "garden")
    assert await labeling.enqueue_flags(flagged, [REDACT]) is None
    feedback = await labeling.enqueue_answer(
        flagged, source="user_feedback", reason="thumbs down", category="user_report"
    )
    assert [t.id for t in await labeling.list_open(tenant.id)] == [task.id, feedback.id]
    done = await labeling.complete(tenant.id, task.id)
    assert done.status == "done"
    assert [t.id for t in await labeling.list_open(tenant.id)] == [feedback.id]


async def test_completing_another_tenants_task_is_not_found(labeling: LabelingQueue) -> None:
    task = await labeling.enqueue(_id(), _id(), source="safety", reason="r", category="pii")
    with pytest.raises(TaskNotFoundError):
        await labeling.complete(_id(), task.id)
    with pytest.raises(TaskNotFoundError):
        await labeling.get(_id(), task.id)
    with pytest.raises(TaskNotFoundError):
        await labeling.task_context(_id(), task.id)


async def test_each_source_has_its_priority_and_a_message_one_open_task_per_source(
    labeling: LabelingQueue,
) -> None:
    tenant, message = _id(), _id()
    tasks = {
        source: await labeling.enqueue(tenant, message, source=source, reason="r", category="c")
        for source in PRIORITIES
    }
    assert {s: t.priority for s, t in tasks.items()} == {
        "safety": 90,
        "user_report": 80,
        "user_feedback": 70,
        "withheld": 50,
        "low_retrieval": 30,
    }
    again = await labeling.enqueue(tenant, message, source="safety", reason="other", category="x")
    assert again.id == tasks["safety"].id
    assert again.reason == "r"
    await labeling.complete(tenant, again.id)
    reopened = await labeling.enqueue(tenant, message, source="safety", reason="new", category="x")
    assert reopened.id != again.id
    chosen = await labeling.enqueue(
        tenant, _id(), source="withheld", reason="r", category="c", priority=99
    )
    assert chosen.priority == 99
    with pytest.raises(InvalidInputError):
        await labeling.enqueue(tenant, message, source="bogus", reason="r", category="c")  # type: ignore[arg-type]


async def test_racing_flags_of_one_message_open_one_task(labeling: LabelingQueue) -> None:
    """Guards the unique index behind enqueue's check: ten callers, one open task."""
    tenant, message = _id(), _id()
    tasks = await asyncio.gather(
        *(
            labeling.enqueue(tenant, message, source="user_report", reason=f"r{i}", category="c")
            for i in range(10)
        )
    )
    assert len({t.id for t in tasks}) == 1
    assert await labeling.count_tasks(tenant) == 1


async def test_listing_orders_by_priority_then_age_and_filters(labeling: LabelingQueue) -> None:
    tenant = _id()

    async def task(source: str, collection: str | None, version: str | None) -> str:
        opened = await labeling.enqueue(
            tenant,
            _id(),
            source=source,  # type: ignore[arg-type]
            reason="r",
            category="c",
            collection=collection,
            model_version=version,
        )
        return opened.id

    low = await task("low_retrieval", "garden", "v1")
    first_feedback = await task("user_feedback", "garden", "v2")
    middle = utcnow()
    second_feedback = await task("user_feedback", "kitchen", "v1")
    safety = await task("safety", None, None)

    everything = await labeling.list_tasks(tenant, TaskFilters())
    assert [t.id for t in everything] == [safety, first_feedback, second_feedback, low]
    page = await labeling.list_tasks(tenant, TaskFilters(), limit=2, offset=1)
    assert [t.id for t in page] == [first_feedback, second_feedback]

    cases = {
        TaskFilters(source="user_feedback"): [first_feedback, second_feedback],
        TaskFilters(collection="garden"): [first_feedback, low],
        TaskFilters(model_version="v1"): [second_feedback, low],
        TaskFilters(since=middle): [safety, second_feedback],
        TaskFilters(until=middle): [first_feedback, low],
        TaskFilters(source="user_feedback", collection="kitchen"): [second_feedback],
        TaskFilters(status="done"): [],
    }
    for filters, expected in cases.items():
        assert [t.id for t in await labeling.list_tasks(tenant, filters)] == expected, filters
        assert await labeling.count_tasks(tenant, filters) == len(expected), filters
    await labeling.complete(tenant, safety)
    assert [t.id for t in await labeling.list_tasks(tenant, TaskFilters(status="done"))] == [safety]
    assert await labeling.count_tasks(tenant, TaskFilters(status=None)) == 4
    assert await labeling.count_tasks(tenant) == 3
    assert await labeling.list_tasks(_id(), TaskFilters(status=None)) == []
    with pytest.raises(InvalidInputError):
        await labeling.list_tasks(tenant, limit=0)

    assert await labeling.facets(tenant) == {
        "sources": ["low_retrieval", "safety", "user_feedback"],
        "collections": ["garden", "kitchen"],
        "model_versions": ["v1", "v2"],
    }
    assert await labeling.facets(_id()) == {"sources": [], "collections": [], "model_versions": []}


async def test_a_task_shows_its_conversation_up_to_the_answer(
    labeling: LabelingQueue,
    answer: Answer,
    conversations: ConversationService,
    tenant: TenantInfo,
) -> None:
    first = await answer("What do bees drink?", "Nectar [1].")
    second = await answer(
        "And ants?", "Ants farm aphids [2].", conversation_id=first.conversation_id
    )
    task = await labeling.enqueue_answer(
        first, source="low_retrieval", reason="best score 0.3", category="low_score"
    )

    context = await labeling.task_context(tenant.id, task.id)
    assert context.task == task
    assert [(m.role, m.content) for m in context.messages] == [
        ("user", "What do bees drink?"),
        ("assistant", "Nectar [1]."),
    ]
    assert context.answer is not None
    assert context.answer.id == first.id
    withheld = [s for s in context.answer.sources if s["n"] is None]
    assert [s["verdict"]["action"] for s in withheld] == ["refuse"]
    assert context.answer.citations == [{"n": 1, "kind": "marker"}]
    assert context.answer.model_version == "v1"

    later = await labeling.enqueue_answer(second, source="user_report", reason="r", category="c")
    assert len((await labeling.task_context(tenant.id, later.id)).messages) == 4

    await conversations.delete(tenant.id, first.conversation_id)
    gone = await labeling.task_context(tenant.id, task.id)
    assert (gone.task.id, gone.messages, gone.answer) == (task.id, [], None)
