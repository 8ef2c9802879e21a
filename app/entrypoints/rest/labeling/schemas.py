"""Wire schemas of the labeling queue: tasks, what a labeler reviews, labels."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field

from app.entrypoints.rest.conversations.schemas import MessageOut
from app.entrypoints.schemas import LABEL_PATTERN, Schema
from conversation import (
    LABEL_CATEGORIES,
    MAX_CORRECTED_ANSWER_CHARS,
    MAX_NOTE_CHARS,
    LabelCategory,
    LabelingSource,
    LabelInput,
    TaskFilters,
    TaskStatus,
)

if TYPE_CHECKING:
    from conversation import Label, LabelingTask, TaskContext

SourceNumber = Annotated[str, Field(pattern=r"^[1-9][0-9]{0,2}$")]
"""A source's number as a JSON key: its 1-based place in the answer's ``sources``."""
FilterText = Annotated[str, Field(min_length=1, max_length=128, pattern=LABEL_PATTERN)]
"""A collection or model version to filter by."""


class TaskOut(Schema):
    id: str
    message_id: str
    conversation_id: str | None
    source: LabelingSource
    """Who asked for the review."""
    reason: str
    """Why, in words, for the labeler."""
    category: str
    status: TaskStatus
    priority: int
    """The queue's order: higher first, then older first."""
    labels_wanted: int
    labels_done: int
    lease_owner: str | None
    """Who holds the task; with ``lease_until`` in the past it is free again."""
    lease_until: datetime | None
    model_version: str | None
    collection: str | None
    created_at: datetime

    @classmethod
    def of(cls, task: LabelingTask) -> TaskOut:
        return cls(
            id=task.id,
            message_id=task.message_id,
            conversation_id=task.conversation_id,
            source=task.source,
            reason=task.reason,
            category=task.category,
            status=task.status,
            priority=task.priority,
            labels_wanted=task.labels_wanted,
            labels_done=task.labels_done,
            lease_owner=task.lease_owner,
            lease_until=task.lease_until,
            model_version=task.model_version,
            collection=task.collection,
            created_at=task.created_at,
        )


class TaskList(Schema):
    items: list[TaskOut]
    total: int
    """Tasks matching the filters, on every page."""
    limit: int
    offset: int


class TaskDetail(Schema):
    """What a labeler reviews: the task, its conversation up to and including the
    answer (oldest first; empty once the conversation was deleted), the answer with
    its sources (the withheld ones have ``n: null`` and their ``verdict``), citations
    and model version."""

    task: TaskOut
    messages: list[MessageOut]
    answer: MessageOut | None

    @classmethod
    def of(cls, context: TaskContext) -> TaskDetail:
        return cls(
            task=TaskOut.of(context.task),
            messages=[MessageOut.of(m) for m in context.messages],
            answer=None if context.answer is None else MessageOut.of(context.answer),
        )


class NextTaskIn(Schema):
    """Which tasks "next" may hand out; every field narrows, none is required."""

    source: LabelingSource | None = None
    collection: FilterText | None = None
    model_version: FilterText | None = None
    since: datetime | None = None
    """Tasks opened at or after this time."""
    until: datetime | None = None
    """Tasks opened before this time."""

    def to_filters(self) -> TaskFilters:
        return TaskFilters(
            source=self.source,
            collection=self.collection,
            model_version=self.model_version,
            since=self.since,
            until=self.until,
        )


class NextTask(Schema):
    """The task leased to the caller (the one they hold, else the queue's first they
    have neither labelled nor skipped); ``null`` when none is left."""

    task: TaskDetail | None


class LabelIn(Schema):
    categories: list[LabelCategory] = Field(min_length=1, max_length=len(LABEL_CATEGORIES))
    """What the answer is: ``good``, or the problems found (not both)."""
    source_ratings: dict[SourceNumber, Literal[0, 1, 2]] = Field(default_factory=dict)
    """Relevance of each source by its number: 0 irrelevant, 1 partly, 2 relevant."""
    corrected_answer: str | None = Field(default=None, max_length=MAX_CORRECTED_ANSWER_CHARS)
    """The answer as it should have been (what the export trains on)."""
    note: str | None = Field(default=None, max_length=MAX_NOTE_CHARS)

    def to_input(self) -> LabelInput:
        return LabelInput(
            categories=list(self.categories),
            source_ratings=dict(self.source_ratings),
            corrected_answer=self.corrected_answer,
            note=self.note,
        )


class LabelOut(Schema):
    id: str
    task_id: str
    labeler: str
    categories: list[LabelCategory]
    source_ratings: dict[str, int]
    corrected_answer: str | None
    note: str | None
    created_at: datetime

    @classmethod
    def of(cls, label: Label) -> LabelOut:
        return cls(
            id=label.id,
            task_id=label.task_id,
            labeler=label.labeler,
            categories=list(label.categories),
            source_ratings={str(n): r for n, r in label.source_ratings.items()},
            corrected_answer=label.corrected_answer,
            note=label.note,
            created_at=label.created_at,
        )
