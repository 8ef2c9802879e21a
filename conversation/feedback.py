"""Users' ratings of assistant messages; thumbs-down feeds the labeling queue."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select

from conversation.errors import InvalidInputError, NotFoundError
from conversation.models import FeedbackRow, MessageRow

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from conversation.types import FeedbackInfo

MAX_COMMENT_CHARS = 4000


class FeedbackService:
    """Records feedback on a tenant's assistant messages."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def add(
        self, tenant_id: str, message_id: str, rating: int, comment: str | None = None
    ) -> FeedbackInfo:
        """Records a rating of an assistant message.

        Args:
            tenant_id: The caller's tenant.
            message_id: The assistant message rated.
            rating: +1 (good) or -1 (bad).
            comment: Optional free text.

        Raises:
            InvalidInputError: A rating other than 1 or -1, or a too long comment.
            NotFoundError: No such assistant message for this tenant (user messages
                and other tenants' messages included).
        """
        # NOTE: bool is an int subclass; True must not pass for +1.
        if isinstance(rating, bool) or rating not in (1, -1):
            raise InvalidInputError("rating is 1 or -1")
        if comment is not None and len(comment) > MAX_COMMENT_CHARS:
            raise InvalidInputError(f"a comment has at most {MAX_COMMENT_CHARS} characters")
        async with self._sessions() as session, session.begin():
            message = await session.scalar(
                select(MessageRow.id).where(
                    MessageRow.id == message_id,
                    MessageRow.tenant_id == tenant_id,
                    MessageRow.role == "assistant",
                )
            )
            if message is None:
                raise NotFoundError("message not found")
            row = FeedbackRow(
                message_id=message_id, tenant_id=tenant_id, rating=rating, comment=comment
            )
            session.add(row)
        return row.to_info()
