"""Labels on SQLite and PostgreSQL: checked, stored, and never more than a task wants.

The overlap promise under test: however many labelers submit at once, a task that
wants three labels stores exactly three and is done.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING, Any

import pytest

from conversation import (
    AlreadyLabelledError,
    InvalidInputError,
    InvalidLabelError,
    LabelingQueue,
    LabelInput,
    TaskCompleteError,
    TaskNotFoundError,
    TenantInfo,
)

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from tests.integration.conversation.conftest import Answer

LEASE_S = 300.0
GOOD = LabelInput(categories=["good"])


def _id() -> str:
    return str(uuid.uuid4())


async def test_a_label_is_stored_counted_and_closes_a_one_label_task(
    labeling: LabelingQueue, answer: Answer, tenant: TenantInfo
) -> None:
    answered = await answer()
    task = await labeling.enqueue_answer(answered, source="user_feedback", reason="r", category="c")
    await labeling.claim(tenant.id, task.id, "ann", lease_s=LEASE_S)

    label = await labeling.submit(
        tenant.id,
        task.id,
        "ann",
        LabelInput(
            categories=["hallucination", "wrong_citation", "hallucination"],
            source_ratings={1: 2, "3": 0},
            corrected_answer="Bees drink nectar and water [1].",
            note="  ",
        ),
    )

    assert label.categories == ("hallucination", "wrong_citation")
    assert label.source_ratings == {1: 2, 3: 0}
    assert label.corrected_answer == "Bees drink nectar and water [1]."
    assert label.note is None, "a blank note is no note"
    assert (label.task_id, label.labeler, label.tenant_id) == (task.id, "ann", tenant.id)
    done = await labeling.get(tenant.id, task.id)
    assert (done.status, done.labels_done, done.lease_owner, done.lease_until) == (
        "done",
        1,
        None,
        None,
    )
    assert await labeling.labels(tenant.id, task.id) == [label]
    with pytest.raises(TaskCompleteError):
        await labeling.submit(tenant.id, task.id, "bob", GOOD)


async def test_many_labelers_at_once_never_exceed_the_overlap(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Guards the conditional UPDATE behind submit: 20 concurrent submits, 3 wanted."""
    labeling = LabelingQueue(sessions, labels_wanted=3)
    tenant = _id()
    task = await labeling.enqueue(tenant, _id(), source="user_report", reason="r", category="c")

    results = await asyncio.gather(
        *(labeling.submit(tenant, task.id, f"labeler-{i}", GOOD) for i in range(20)),
        return_exceptions=True,
    )

    stored = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(stored) == 3
    assert all(isinstance(r, TaskCompleteError) for r in refused), refused
    assert len(await labeling.labels(tenant, task.id)) == 3
    done = await labeling.get(tenant, task.id)
    assert (done.labels_done, done.labels_wanted, done.status) == (3, 3, "done")


async def test_one_label_per_labeler(sessions: async_sessionmaker[AsyncSession]) -> None:
    labeling = LabelingQueue(sessions, labels_wanted=2)
    tenant = _id()
    task = await labeling.enqueue(tenant, _id(), source="safety", reason="r", category="c")
    await labeling.submit(tenant, task.id, "ann", GOOD)
    with pytest.raises(AlreadyLabelledError):
        await labeling.submit(tenant, task.id, "ann", GOOD)
    kept = await labeling.get(tenant, task.id)
    assert (kept.labels_done, kept.status) == (1, "open")
    twice = await asyncio.gather(
        *(labeling.submit(tenant, task.id, "bob", GOOD) for _ in range(4)), return_exceptions=True
    )
    assert sum(not isinstance(r, BaseException) for r in twice) == 1
    assert all(isinstance(r, (AlreadyLabelledError, TaskCompleteError)) for r in twice if
               isinstance(r, BaseException))  # fmt: skip
    assert (await labeling.get(tenant, task.id)).labels_done == 2


async def test_submitting_keeps_another_labelers_lease(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    labeling = LabelingQueue(sessions, labels_wanted=2)
    tenant = _id()
    task = await labeling.enqueue(tenant, _id(), source="safety", reason="r", category="c")
    await labeling.claim(tenant, task.id, "ann", lease_s=LEASE_S)
    await labeling.submit(tenant, task.id, "bob", GOOD)
    assert (await labeling.get(tenant, task.id)).lease_owner == "ann"
    await labeling.submit(tenant, task.id, "ann", GOOD)
    assert (await labeling.get(tenant, task.id)).lease_owner is None


BAD_LABELS: list[tuple[dict[str, Any], str]] = [
    ({"categories": []}, "at least one category"),
    ({"categories": "good"}, "at least one category"),
    ({"categories": ["great"]}, "unknown category"),
    ({"categories": ["good", "unsafe"]}, "cannot be combined"),
    ({"categories": ["unsafe"], "source_ratings": {1: 3}}, "0, 1 or 2"),
    ({"categories": ["unsafe"], "source_ratings": {1: True}}, "0, 1 or 2"),
    ({"categories": ["unsafe"], "source_ratings": {0: 1}}, "1 or more"),
    ({"categories": ["unsafe"], "source_ratings": {"x": 1}}, "1 or more"),
    ({"categories": ["unsafe"], "source_ratings": {True: 1}}, "1 or more"),
    ({"categories": ["unsafe"], "source_ratings": {4: 1}}, "not one of the answer's 3 sources"),
    ({"categories": ["unsafe"], "corrected_answer": "x" * 20_001}, "20000 characters"),
    ({"categories": ["unsafe"], "note": "x" * 4001}, "4000 characters"),
]


@pytest.mark.parametrize(("fields", "message"), BAD_LABELS)
async def test_a_bad_label_is_refused_and_counts_nothing(
    labeling: LabelingQueue,
    answer: Answer,
    tenant: TenantInfo,
    fields: dict[str, Any],
    message: str,
) -> None:
    task = await labeling.enqueue_answer(await answer(), source="safety", reason="r", category="c")
    with pytest.raises(InvalidLabelError, match=message):
        await labeling.submit(tenant.id, task.id, "ann", LabelInput(**fields))
    with pytest.raises(InvalidInputError):
        await labeling.submit(tenant.id, task.id, "", GOOD)
    kept = await labeling.get(tenant.id, task.id)
    assert (kept.labels_done, kept.status) == (0, "open")
    assert await labeling.labels(tenant.id, task.id) == []


async def test_another_tenants_task_takes_no_label(labeling: LabelingQueue) -> None:
    tenant = _id()
    task = await labeling.enqueue(tenant, _id(), source="safety", reason="r", category="c")
    with pytest.raises(TaskNotFoundError):
        await labeling.submit(_id(), task.id, "ann", GOOD)
    with pytest.raises(TaskNotFoundError):
        await labeling.labels(_id(), task.id)
    with pytest.raises(TaskNotFoundError):
        await labeling.submit(tenant, _id(), "ann", GOOD)
    assert (await labeling.get(tenant, task.id)).labels_done == 0


async def test_a_task_closed_by_hand_takes_no_label(labeling: LabelingQueue) -> None:
    tenant = _id()
    task = await labeling.enqueue(tenant, _id(), source="safety", reason="r", category="c")
    await labeling.complete(tenant, task.id)
    with pytest.raises(TaskCompleteError):
        await labeling.submit(tenant, task.id, "ann", GOOD)
