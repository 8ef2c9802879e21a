"""Wire schemas of feedback on an answer."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from app.entrypoints.schemas import Schema

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
