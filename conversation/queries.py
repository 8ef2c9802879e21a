"""The SQL behind ``ConversationService``: a tenant's conversation row, keyset pages
of conversations and of messages, and the stamp that keeps a conversation's messages
in order.

Every function takes an open session and leaves transactions, the hot state and
tenancy checks beyond the conversation row to the service.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import and_, func, or_, select

from conversation.errors import NotFoundError
from conversation.models import ConversationRow, MessageRow
from kernel.cursor import decode_cursor, encode_cursor
from kernel.orm import utcnow

if TYPE_CHECKING:
    from datetime import datetime

    from sqlalchemy.ext.asyncio import AsyncSession

    from conversation.types import ConversationInfo, MessageInfo

_TICK = timedelta(microseconds=1)


async def conversation_row(
    session: AsyncSession, tenant_id: str, conversation_id: str
) -> ConversationRow:
    """The tenant's conversation; ``NotFoundError`` for any other (another tenant's too)."""
    row = await session.scalar(
        select(ConversationRow).where(
            ConversationRow.id == conversation_id, ConversationRow.tenant_id == tenant_id
        )
    )
    if row is None:
        raise NotFoundError("conversation not found")
    return row


async def conversation_page(
    session: AsyncSession, tenant_id: str, limit: int, cursor: str | None, owner: str | None
) -> tuple[list[ConversationInfo], str | None]:
    """A page of conversations, most recently updated first, and the next page's cursor.

    Raises:
        InvalidCursorError: The cursor was not issued by ``conversation_page``.
    """
    query = select(ConversationRow).where(ConversationRow.tenant_id == tenant_id)
    if owner is not None:
        query = query.where(ConversationRow.owner == owner)
    if cursor is not None:
        updated_at, row_id = decode_cursor(cursor)
        query = query.where(
            or_(
                ConversationRow.updated_at < updated_at,
                and_(ConversationRow.updated_at == updated_at, ConversationRow.id < row_id),
            )
        )
    query = query.order_by(ConversationRow.updated_at.desc(), ConversationRow.id.desc())
    rows = (await session.scalars(query.limit(limit + 1))).all()
    items = [row.to_info() for row in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        next_cursor = encode_cursor(items[-1].updated_at, items[-1].id)
    return items, next_cursor


async def newest_messages(
    session: AsyncSession, conversation_id: str, limit: int, before: str | None = None
) -> list[MessageInfo]:
    """The last ``limit`` messages of a conversation, oldest first; with ``before``
    (a cursor of ``older_cursor``), the last ``limit`` of those older than it.

    Raises:
        InvalidCursorError: ``before`` was not issued by ``older_cursor``.
    """
    if limit <= 0:
        return []
    query = select(MessageRow).where(MessageRow.conversation_id == conversation_id)
    if before is not None:
        created_at, row_id = decode_cursor(before)
        query = query.where(
            or_(
                MessageRow.created_at < created_at,
                and_(MessageRow.created_at == created_at, MessageRow.id < row_id),
            )
        )
    rows = await session.scalars(
        query.order_by(MessageRow.created_at.desc(), MessageRow.id.desc()).limit(limit)
    )
    return [row.to_info() for row in reversed(rows.all())]


def older_cursor(oldest: MessageInfo) -> str:
    """The cursor of the messages older than ``oldest`` (``newest_messages``'s ``before``)."""
    return encode_cursor(oldest.created_at, oldest.id)


async def next_timestamp(session: AsyncSession, conversation_id: str) -> datetime:
    """The ``created_at`` of a conversation's next message.

    NOTE: messages are ordered by created_at; two inserted within one clock tick (or
    after a clock step back) would otherwise tie and fall back to random-id order. A
    strictly increasing stamp keeps turns in order.
    """
    last = await session.scalar(
        select(func.max(MessageRow.created_at)).where(MessageRow.conversation_id == conversation_id)
    )
    now = utcnow()
    return now if last is None or now > last else last + _TICK
