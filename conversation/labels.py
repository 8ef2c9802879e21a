"""Labelers' labels: checked, stored, and counted against the task's overlap.

A task wants ``labels_wanted`` labels, each by a different labeler. The count is
kept by the task row itself and moved by one conditional UPDATE in the label's
transaction (``labels_done < labels_wanted``, then ``+ 1``, and ``done`` at the
last one): concurrent submits queue on the row (its lock on PostgreSQL, the one
writer on SQLite), and once the count is reached every later UPDATE matches
nothing, so a task never holds more labels than it wants. A CHECK constraint on
the row says the same, should anything else write it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from sqlalchemy import case, select, update
from sqlalchemy.exc import IntegrityError

from conversation.errors import AlreadyLabelledError, InvalidLabelError, TaskCompleteError
from conversation.models import LabelingTaskRow, LabelRow
from conversation.task_leases import check_labeler
from conversation.task_queries import answer_row, task_row
from conversation.types import LABEL_CATEGORIES, LabelCategory

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from conversation.types import Label, LabelInput

MAX_CORRECTED_ANSWER_CHARS = 20_000
MAX_NOTE_CHARS = 4000
RATINGS = (0, 1, 2)
"""A source's relevance: irrelevant, partly relevant, relevant."""


def check_label(
    label: LabelInput,
) -> tuple[list[LabelCategory], dict[str, int], str | None, str | None]:
    """The label as stored: its categories (deduplicated, in order), its ratings by
    source number as JSON keys, and its texts (blank ones as ``None``).

    Raises:
        InvalidLabelError: No category, an unknown one, ``good`` beside a problem,
            a rating outside 0..2 or of a source number below 1, a text too long.
    """
    if isinstance(label.categories, str) or not label.categories:
        raise InvalidLabelError("a label names at least one category")
    categories: list[LabelCategory] = []
    for category in label.categories:
        if category not in LABEL_CATEGORIES:
            known = ", ".join(LABEL_CATEGORIES)
            raise InvalidLabelError(f"unknown category {category!r}; known: {known}")
        if category not in categories:
            categories.append(category)
    if "good" in categories and len(categories) > 1:
        raise InvalidLabelError("'good' cannot be combined with a problem category")
    if not isinstance(label.source_ratings, Mapping):
        raise InvalidLabelError("source ratings map a source number to 0, 1 or 2")
    ratings: dict[str, int] = {}
    for key, rating in label.source_ratings.items():
        number = _source_number(key)
        # NOTE: bool is an int subclass; True must not pass for 1.
        if isinstance(rating, bool) or rating not in RATINGS:
            raise InvalidLabelError(f"source {number}'s rating is 0, 1 or 2, not {rating!r}")
        ratings[str(number)] = rating
    corrected = _text(label.corrected_answer, "corrected answer", MAX_CORRECTED_ANSWER_CHARS)
    return categories, ratings, corrected, _text(label.note, "note", MAX_NOTE_CHARS)


def _source_number(key: object) -> int:
    """A source number from a ratings key: an int, or its decimal digits (a form's or
    JSON's keys are strings)."""
    if isinstance(key, str) and key.isascii() and key.isdigit():
        key = int(key)
    if isinstance(key, bool) or not isinstance(key, int) or key < 1:
        raise InvalidLabelError(f"a source number is 1 or more, not {key!r}")
    return key


def _text(value: str | None, name: str, limit: int) -> str | None:
    if value is None or not value.strip():
        return None
    if len(value) > limit:
        raise InvalidLabelError(f"a {name} has at most {limit} characters")
    return value


class LabelBook:
    """The label half of ``LabelingQueue`` (a mixin over its sessions)."""

    _sessions: async_sessionmaker[AsyncSession]

    async def submit(self, tenant_id: str, task_id: str, labeler: str, label: LabelInput) -> Label:
        """Store a labeler's label of a task, counting it against the task's overlap.

        The labeler need not hold the task's lease (their lease on it, if any, is
        released); the overlap is enforced whatever the leases say.

        Raises:
            InvalidLabelError: A label ``check_label`` refuses, or a rating of a
                source number the answer does not have.
            TaskNotFoundError: No such task for this tenant.
            TaskCompleteError: The task has all the labels it wants, or is done.
            AlreadyLabelledError: This labeler labelled the task already.
        """
        check_labeler(labeler)
        categories, ratings, corrected, note = check_label(label)
        task = LabelingTaskRow
        mine = task.lease_owner == labeler
        row = LabelRow(
            tenant_id=tenant_id,
            task_id=task_id,
            labeler=labeler,
            categories=categories,
            source_ratings=ratings,
            corrected_answer=corrected,
            note=note,
        )
        try:
            async with self._sessions() as session, session.begin():
                counted = await session.execute(
                    update(task)
                    .where(
                        task.id == task_id,
                        task.tenant_id == tenant_id,
                        task.status == "open",
                        task.labels_done < task.labels_wanted,
                    )
                    .values(
                        labels_done=task.labels_done + 1,
                        status=case(
                            (task.labels_done + 1 >= task.labels_wanted, "done"), else_="open"
                        ),
                        lease_owner=case((mine, None), else_=task.lease_owner),
                        lease_until=case((mine, None), else_=task.lease_until),
                    )
                    .execution_options(synchronize_session=False)
                )
                stored = await task_row(session, tenant_id, task_id)
                if counted.rowcount != 1:  # type: ignore[attr-defined]
                    raise TaskCompleteError("this task has all the labels it wants")
                await _check_source_numbers(session, tenant_id, stored.message_id, ratings)
                session.add(row)
                await session.flush()
        except IntegrityError as exc:
            raise AlreadyLabelledError("this labeler has labelled this task already") from exc
        return row.to_label()

    async def labels(self, tenant_id: str, task_id: str) -> list[Label]:
        """A task's labels, oldest first.

        Raises:
            TaskNotFoundError: No such task for this tenant.
        """
        async with self._sessions() as session:
            await task_row(session, tenant_id, task_id)
            rows = await session.scalars(
                select(LabelRow)
                .where(LabelRow.task_id == task_id, LabelRow.tenant_id == tenant_id)
                .order_by(LabelRow.created_at, LabelRow.id)
            )
            return [r.to_label() for r in rows.all()]


async def _check_source_numbers(
    session: AsyncSession, tenant_id: str, message_id: str, ratings: dict[str, int]
) -> None:
    """Refuse a rating of a source the answer does not have (when the answer is left)."""
    if not ratings:
        return
    answer = await answer_row(session, tenant_id, message_id)
    if answer is None:
        return
    top = max(int(n) for n in ratings)
    if top > len(answer.sources):
        shown = len(answer.sources)
        raise InvalidLabelError(
            f"source {top} is not one of the answer's {shown} source{'s' * (shown != 1)}"
        )
