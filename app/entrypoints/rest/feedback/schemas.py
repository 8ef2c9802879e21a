"""Wire schemas of feedback on an answer and of a report of one."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from app.entrypoints.schemas import Schema
from app.labeling.intake import ReportReason

if TYPE_CHECKING:
    from conversation import FeedbackInfo


class FeedbackIn(Schema):
    rating: Literal[1, -1]
    comment: str | None = Field(default=None, max_length=2000)


class FeedbackOut(Schema):
    id: str
    message_id: str
    rating: int
    comment: str | None
    created_at: datetime

    @classmethod
    def of(cls, info: FeedbackInfo) -> FeedbackOut:
        return cls(
            id=info.id,
            message_id=info.message_id,
            rating=info.rating,
            comment=info.comment,
            created_at=info.created_at,
        )


class ReportIn(Schema):
    reason: ReportReason
    """What is wrong with the answer."""
    comment: str | None = Field(default=None, max_length=2000)


class ReportOut(Schema):
    """The report as taken: the answer is queued for the labelers."""

    message_id: str
    reason: ReportReason
    comment: str | None
