"""Labelers' leases on SQLite and PostgreSQL: "next task", claims, renewals, skips.

The promise under test: two labelers never hold one task at once, however they
race, and a lease that runs out returns its task to the queue.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

from conversation import (
    LabelingQueue,
    LabelInput,
    LeaseLostError,
    TaskCompleteError,
    TaskFilters,
    TaskLeasedError,
    TaskNotFoundError,
)
from kernel.orm import utcnow

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from conversation import LabelingSource, LabelingTask

LEASE_S = 300.0


def _id() -> str:
    return str(uuid.uuid4())


async def _tasks(
    labeling: LabelingQueue, tenant: str, n: int, source: LabelingSource = "user_feedback"
) -> list[LabelingTask]:
    return [
        await labeling.enqueue(tenant, _id(), source=source, reason=f"r{i}", category="c")
        for i in range(n)
    ]


async def test_next_task_is_the_highest_priority_then_the_oldest_and_stays_the_labelers(
    labeling: LabelingQueue,
) -> None:
    tenant = _id()
    old_feedback, new_feedback = await _tasks(labeling, tenant, 2)
    (report,) = await _tasks(labeling, tenant, 1, "user_report")

    first = await labeling.claim_next(tenant, "ann", lease_s=LEASE_S)
    assert first is not None
    assert first.id == report.id
    assert first.lease_owner == "ann"
    assert first.lease_until is not None
    assert first.lease_until > utcnow() + timedelta(seconds=LEASE_S - 30)
    assert first.leased_to("ann", utcnow())

    second = await labeling.claim_next(tenant, "bob", lease_s=LEASE_S)
    assert second is not None
    assert second.id == old_feedback.id
    again = await labeling.claim_next(tenant, "ann", lease_s=LEASE_S)
    assert again is not None
    assert again.id == report.id, "a labeler holding a task gets that task back"
    third = await labeling.claim_next(tenant, "cy", lease_s=LEASE_S)
    assert third is not None
    assert third.id == new_feedback.id
    assert await labeling.claim_next(tenant, "dee", lease_s=LEASE_S) is None
    assert await labeling.claim_next(_id(), "ann", lease_s=LEASE_S) is None


async def test_ten_labelers_asking_at_once_get_ten_different_tasks(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Guards the conditional UPDATE: concurrent "next task" calls never share a task."""
    labeling = LabelingQueue(sessions)
    tenant = _id()
    await _tasks(labeling, tenant, 12)
    labelers = [f"labeler-{i}" for i in range(10)]

    claimed = await asyncio.gather(
        *(labeling.claim_next(tenant, who, lease_s=LEASE_S) for who in labelers)
    )

    assert all(task is not None for task in claimed)
    ids = [task.id for task in claimed if task is not None]
    assert len(set(ids)) == 10
    stored = {t.id: t.lease_owner for t in await labeling.list_tasks(tenant)}
    assert {stored[task.id] for task in claimed if task is not None} == set(labelers)
    assert sum(owner is None for owner in stored.values()) == 2


async def test_more_labelers_than_tasks_leave_the_rest_without_one(
    labeling: LabelingQueue,
) -> None:
    tenant = _id()
    await _tasks(labeling, tenant, 3)
    claimed = await asyncio.gather(
        *(labeling.claim_next(tenant, f"l{i}", lease_s=LEASE_S) for i in range(8))
    )
    got = [task.id for task in claimed if task is not None]
    assert len(got) == len(set(got)) == 3


async def test_an_expired_lease_returns_the_task_to_the_queue(labeling: LabelingQueue) -> None:
    tenant = _id()
    (task,) = await _tasks(labeling, tenant, 1)
    held = await labeling.claim_next(tenant, "ann", lease_s=0.2)
    assert held is not None
    assert await labeling.claim_next(tenant, "bob", lease_s=LEASE_S) is None
    with pytest.raises(TaskLeasedError):
        await labeling.claim(tenant, task.id, "bob", lease_s=LEASE_S)

    await asyncio.sleep(0.3)
    # Nobody took it yet: its holder may still renew it.
    renewed = await labeling.renew(tenant, task.id, "ann", lease_s=0.2)
    assert renewed.lease_owner == "ann"
    await asyncio.sleep(0.3)
    taken = await labeling.claim_next(tenant, "bob", lease_s=LEASE_S)
    assert taken is not None
    assert (taken.id, taken.lease_owner) == (task.id, "bob")
    with pytest.raises(LeaseLostError):
        await labeling.renew(tenant, task.id, "ann", lease_s=LEASE_S)
    assert await labeling.claim_next(tenant, "ann", lease_s=LEASE_S) is None


async def test_claiming_one_task(labeling: LabelingQueue) -> None:
    tenant = _id()
    first, second = await _tasks(labeling, tenant, 2)
    mine = await labeling.claim(tenant, second.id, "ann", lease_s=LEASE_S)
    assert mine.lease_owner == "ann"
    assert (await labeling.claim(tenant, second.id, "ann", lease_s=LEASE_S)).id == second.id
    with pytest.raises(TaskLeasedError):
        await labeling.claim(tenant, second.id, "bob", lease_s=LEASE_S)

    # A labeler holds one task at a time: claiming another releases the first.
    await labeling.claim(tenant, first.id, "ann", lease_s=LEASE_S)
    assert (await labeling.get(tenant, second.id)).lease_owner is None
    assert (await labeling.claim(tenant, second.id, "bob", lease_s=LEASE_S)).lease_owner == "bob"

    await labeling.complete(tenant, first.id)
    with pytest.raises(TaskCompleteError):
        await labeling.claim(tenant, first.id, "ann", lease_s=LEASE_S)
    with pytest.raises(TaskNotFoundError):
        await labeling.claim(_id(), second.id, "ann", lease_s=LEASE_S)
    with pytest.raises(TaskNotFoundError):
        await labeling.claim(tenant, _id(), "ann", lease_s=LEASE_S)
    with pytest.raises(ValueError, match="lease"):
        await labeling.claim(tenant, second.id, "bob", lease_s=0)


async def test_renewing_extends_only_the_holders_lease(labeling: LabelingQueue) -> None:
    tenant = _id()
    (task,) = await _tasks(labeling, tenant, 1)
    held = await labeling.claim(tenant, task.id, "ann", lease_s=60)
    renewed = await labeling.renew(tenant, task.id, "ann", lease_s=600)
    assert held.lease_until is not None
    assert renewed.lease_until is not None
    assert renewed.lease_until > held.lease_until + timedelta(seconds=500)
    with pytest.raises(LeaseLostError):
        await labeling.renew(tenant, task.id, "bob", lease_s=60)
    with pytest.raises(TaskNotFoundError):
        await labeling.renew(_id(), task.id, "ann", lease_s=60)


async def test_a_skipped_task_goes_to_the_others_only(labeling: LabelingQueue) -> None:
    tenant = _id()
    report, feedback = await _tasks(labeling, tenant, 1, "user_report") + await _tasks(
        labeling, tenant, 1
    )
    held = await labeling.claim_next(tenant, "ann", lease_s=LEASE_S)
    assert held is not None
    assert held.id == report.id

    await labeling.skip(tenant, report.id, "ann")
    await labeling.skip(tenant, report.id, "ann")  # twice is once
    assert (await labeling.get(tenant, report.id)).lease_owner is None
    after = await labeling.claim_next(tenant, "ann", lease_s=LEASE_S)
    assert after is not None
    assert after.id == feedback.id
    await labeling.skip(tenant, feedback.id, "ann")
    assert await labeling.claim_next(tenant, "ann", lease_s=LEASE_S) is None
    other = await labeling.claim_next(tenant, "bob", lease_s=LEASE_S)
    assert other is not None
    assert other.id == report.id
    # Skipping a task someone else holds leaves their lease alone.
    await labeling.skip(tenant, report.id, "cy")
    assert (await labeling.get(tenant, report.id)).lease_owner == "bob"
    # The skipper may still take it on purpose.
    assert (await labeling.claim(tenant, feedback.id, "ann", lease_s=LEASE_S)).lease_owner == "ann"
    with pytest.raises(TaskNotFoundError):
        await labeling.skip(_id(), report.id, "ann")


async def test_next_task_follows_the_filters_and_skips_what_the_labeler_labelled(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    labeling = LabelingQueue(sessions, labels_wanted=2)
    tenant = _id()
    (report,) = await _tasks(labeling, tenant, 1, "user_report")
    withheld = await labeling.enqueue(
        tenant, _id(), source="withheld", reason="r", category="c", collection="garden"
    )
    only_withheld = TaskFilters(source="withheld")
    claimed = await labeling.claim_next(tenant, "ann", lease_s=LEASE_S, filters=only_withheld)
    assert claimed is not None
    assert claimed.id == withheld.id
    garden = TaskFilters(collection="kitchen")
    assert await labeling.claim_next(tenant, "bob", lease_s=LEASE_S, filters=garden) is None

    await labeling.submit(tenant, report.id, "bob", LabelInput(categories=["good"]))
    assert (await labeling.get(tenant, report.id)).labels_done == 1
    again = await labeling.claim_next(tenant, "bob", lease_s=LEASE_S)
    assert again is None, "bob labelled the report and ann holds the other task"
    second = await labeling.claim_next(tenant, "cy", lease_s=LEASE_S)
    assert second is not None
    assert second.id == report.id
