"""Labelers' leases on labeling tasks: "next task", claiming one task, renewing, skipping.

A lease is two columns of the task (``lease_owner``, ``lease_until``), taken by a
conditional UPDATE that matches only a task nobody holds, whose lease ran out, or
that the labeler holds already. Of two labelers racing for one task, the second
UPDATE runs after the first commits (the row's lock on PostgreSQL, the one writer
on SQLite), matches nothing, and that labeler moves on to the next candidate: no
two labelers ever hold one task at once, on either database, with no
dialect-specific SQL. A lease that runs out returns the task to the queue; its
holder may still renew it as long as nobody else took it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import Update, exists, or_, select, update
from sqlalchemy.exc import IntegrityError

from conversation.errors import (
    InvalidInputError,
    LeaseLostError,
    TaskCompleteError,
    TaskLeasedError,
)
from conversation.models import LabelingTaskRow, LabelRow, LabelSkipRow
from conversation.task_queries import filtered, queue_order, task_row
from conversation.types import TaskFilters
from kernel.orm import utcnow

if TYPE_CHECKING:
    from datetime import datetime

    from sqlalchemy import ColumnElement
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from conversation.types import LabelingTask

MAX_LABELER_CHARS = 300
_CANDIDATES = 16
"""Tasks "next task" tries per read of the queue; a lost race moves to the next one."""
_ROUNDS = 32
"""Reads of the queue before "next task" gives up under extreme contention."""


def check_labeler(labeler: str) -> None:
    """Refuse an empty or overlong labeler name (``InvalidInputError``)."""
    if not labeler or len(labeler) > MAX_LABELER_CHARS:
        raise InvalidInputError(f"a labeler is 1 to {MAX_LABELER_CHARS} characters")


def _lease_for(lease_s: float) -> tuple[datetime, datetime]:
    if not lease_s > 0:
        raise InvalidInputError("a lease lasts more than 0 seconds")
    now = utcnow()
    return now, now + timedelta(seconds=lease_s)


def _free_for(labeler: str, now: datetime) -> ColumnElement[bool]:
    """A task nobody holds now, or that ``labeler`` holds."""
    task = LabelingTaskRow
    return or_(task.lease_until.is_(None), task.lease_until < now, task.lease_owner == labeler)


class TaskLeases:
    """The lease half of ``LabelingQueue`` (a mixin over its sessions)."""

    _sessions: async_sessionmaker[AsyncSession]

    async def claim_next(
        self,
        tenant_id: str,
        labeler: str,
        *,
        lease_s: float,
        filters: TaskFilters | None = None,
    ) -> LabelingTask | None:
        """Lease the labeler the next task: the one they hold, or the queue's first.

        The queue's first is the highest-priority (then oldest) open task matching
        ``filters`` (their ``status`` aside) that nobody holds a live lease on and
        that this labeler has neither labelled nor skipped.

        Args:
            tenant_id: The labeler's tenant.
            labeler: Who labels (``console:<user id>`` or an API principal's subject).
            lease_s: How long the lease lasts.
            filters: Which tasks to consider; ``None`` is every open one.

        Returns:
            The leased task, or ``None`` when no task is left for this labeler.
        """
        check_labeler(labeler)
        filters = filters or TaskFilters()
        now, until = _lease_for(lease_s)
        async with self._sessions() as session:
            held = await session.scalar(
                select(LabelingTaskRow)
                .where(
                    LabelingTaskRow.tenant_id == tenant_id,
                    LabelingTaskRow.lease_owner == labeler,
                    LabelingTaskRow.status == "open",
                    LabelingTaskRow.lease_until >= now,
                )
                .order_by(LabelingTaskRow.lease_until.desc())
                .limit(1)
            )
        if held is not None:
            return held.to_task()
        for _ in range(_ROUNDS):
            candidates = await self._candidates(tenant_id, labeler, filters, now)
            if not candidates:
                return None
            for task_id in candidates:
                taken = await self._take(tenant_id, task_id, labeler, now, until)
                if taken is not None:
                    return taken
            now, until = _lease_for(lease_s)
        return None

    async def claim(
        self, tenant_id: str, task_id: str, labeler: str, *, lease_s: float
    ) -> LabelingTask:
        """Lease one task to the labeler (from a link, or back to a skipped one).

        Raises:
            TaskNotFoundError: No such task for this tenant.
            TaskCompleteError: The task is done.
            TaskLeasedError: Another labeler holds a live lease on it.
        """
        check_labeler(labeler)
        now, until = _lease_for(lease_s)
        taken = await self._take(tenant_id, task_id, labeler, now, until)
        if taken is not None:
            return taken
        async with self._sessions() as session:
            row = await task_row(session, tenant_id, task_id)
        if row.status != "open":
            raise TaskCompleteError("this task is done")
        raise TaskLeasedError("another labeler is working on this task")

    async def renew(
        self, tenant_id: str, task_id: str, labeler: str, *, lease_s: float
    ) -> LabelingTask:
        """Extend the labeler's lease to ``lease_s`` from now (while its page is open).

        Raises:
            TaskNotFoundError: No such task for this tenant.
            LeaseLostError: The labeler no longer holds it: another labeler took it
                after the lease ran out, the labeler skipped or labelled it, or it
                is done.
        """
        check_labeler(labeler)
        _, until = _lease_for(lease_s)
        async with self._sessions() as session, session.begin():
            renewed = await session.execute(
                update(LabelingTaskRow)
                .where(
                    LabelingTaskRow.id == task_id,
                    LabelingTaskRow.tenant_id == tenant_id,
                    LabelingTaskRow.status == "open",
                    LabelingTaskRow.lease_owner == labeler,
                )
                .values(lease_until=until)
                .execution_options(synchronize_session=False)
            )
            if renewed.rowcount != 1:  # type: ignore[attr-defined]
                await task_row(session, tenant_id, task_id)
                raise LeaseLostError("the lease on this task is lost; claim it again")
            row = await task_row(session, tenant_id, task_id)
        return row.to_task()

    async def skip(self, tenant_id: str, task_id: str, labeler: str) -> None:
        """Pass on a task: release the labeler's lease on it, and never offer it to
        them again through ``claim_next`` (``claim`` still leases it).

        Raises:
            TaskNotFoundError: No such task for this tenant.
        """
        check_labeler(labeler)
        try:
            async with self._sessions() as session, session.begin():
                await session.execute(
                    _release(tenant_id, labeler).where(LabelingTaskRow.id == task_id)
                )
                await task_row(session, tenant_id, task_id)
                skipped = await session.scalar(
                    select(exists().where(LabelSkipRow.task_id == task_id,
                                          LabelSkipRow.labeler == labeler))
                )  # fmt: skip
                if not skipped:
                    session.add(LabelSkipRow(task_id=task_id, labeler=labeler, tenant_id=tenant_id))
        except IntegrityError:
            return  # NOTE: the same skip twice at once; one of them is recorded.

    async def _candidates(
        self, tenant_id: str, labeler: str, filters: TaskFilters, now: datetime
    ) -> list[str]:
        """The first open tasks nobody holds that the labeler has not labelled or skipped."""
        task = LabelingTaskRow
        query = select(task.id).where(
            task.tenant_id == tenant_id,
            task.status == "open",
            or_(task.lease_until.is_(None), task.lease_until < now),
            ~exists().where(LabelRow.task_id == task.id, LabelRow.labeler == labeler),
            ~exists().where(LabelSkipRow.task_id == task.id, LabelSkipRow.labeler == labeler),
        )
        query = queue_order(filtered(query, filters, status=False)).limit(_CANDIDATES)
        async with self._sessions() as session:
            return list((await session.scalars(query)).all())

    async def _take(
        self, tenant_id: str, task_id: str, labeler: str, now: datetime, until: datetime
    ) -> LabelingTask | None:
        """Lease the task if it is open and free for the labeler, releasing any other
        lease of theirs (one task at a time); ``None`` when it was not free."""
        async with self._sessions() as session, session.begin():
            taken = await session.execute(
                update(LabelingTaskRow)
                .where(
                    LabelingTaskRow.id == task_id,
                    LabelingTaskRow.tenant_id == tenant_id,
                    LabelingTaskRow.status == "open",
                    _free_for(labeler, now),
                )
                .values(lease_owner=labeler, lease_until=until)
                .execution_options(synchronize_session=False)
            )
            if taken.rowcount != 1:  # type: ignore[attr-defined]
                return None
            await session.execute(_release(tenant_id, labeler).where(LabelingTaskRow.id != task_id))
            row = await task_row(session, tenant_id, task_id)
        return row.to_task()


def _release(tenant_id: str, labeler: str) -> Update:
    """An UPDATE clearing the labeler's leases (narrow it with ``.where``)."""
    return (
        update(LabelingTaskRow)
        .where(LabelingTaskRow.tenant_id == tenant_id, LabelingTaskRow.lease_owner == labeler)
        .values(lease_owner=None, lease_until=None)
        .execution_options(synchronize_session=False)
    )
