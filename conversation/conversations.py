"""Conversations and their messages, always scoped to one tenant.

Reads of a conversation's header and recent messages go through a ``HotState``
(``conversation.hot_state``); every write goes to SQL first, bracketed by the hot
state's ``writing`` so the cached entry is updated after the commit or dropped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, get_args

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from conversation.errors import ConflictError, InvalidInputError, NotFoundError
from conversation.hot_state.base import CachedConversation, HotState, NoHotState
from conversation.models import ConversationRow, MessageRow, TenantRow
from conversation.queries import (
    conversation_page,
    conversation_row,
    newest_messages,
    next_timestamp,
    older_cursor,
)
from conversation.types import (
    ConversationInfo,
    ConversationPage,
    MessageInfo,
    MessagePage,
    MessageStatus,
)
from kernel.ids import is_canonical_id
from kernel.orm import utcnow

if TYPE_CHECKING:
    import builtins
    from collections.abc import Mapping, Sequence
    from datetime import datetime

    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

MAX_PAGE_SIZE = 100
MAX_MESSAGE_PAGE_SIZE = 200
MAX_TITLE_CHARS = 80
"""A title made from the first user message is cut to this length."""


def title_from(content: str) -> str:
    """Returns a conversation title made from a user message: its first line, cut short."""
    first_line = " ".join(content.strip().splitlines()[0].split()) if content.strip() else ""
    if len(first_line) <= MAX_TITLE_CHARS:
        return first_line
    return first_line[: MAX_TITLE_CHARS - 1].rstrip() + "…"


def _check_id(message_id: str) -> None:
    if not is_canonical_id(message_id):
        raise InvalidInputError("a message id is a lowercase uuid string")


class ConversationService:
    """Creates, lists, reads and deletes a tenant's conversations and their messages."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], hot: HotState | None = None
    ) -> None:
        """Args:
        sessions: Sessions on the database of record.
        hot: Where recent conversation state is served from; ``None`` reads SQL only.
        """
        self._sessions = sessions
        self._hot = hot or NoHotState()

    async def create(
        self, tenant_id: str, title: str | None = None, owner: str | None = None
    ) -> ConversationInfo:
        """Creates an empty conversation.

        Args:
            tenant_id: The tenant it belongs to.
            title: Its title; the first user message titles it when ``None``.
            owner: Who created it (the API layer's principal subject); the API
                shows it to its owner and to the tenant's admins.

        Raises:
            NotFoundError: No such tenant.
        """
        if title is not None:
            title = title.strip()[:200] or None
        async with self._sessions() as session, session.begin():
            if await session.get(TenantRow, tenant_id) is None:
                raise NotFoundError("tenant not found")
            now = utcnow()
            row = ConversationRow(
                tenant_id=tenant_id, title=title, owner=owner, created_at=now, updated_at=now
            )
            session.add(row)
        info = row.to_info()
        # A new id has no entry yet (version 0): its first turn finds it hot.
        await self._hot.fill(tenant_id, info.id, 0, CachedConversation(info, (), complete=True))
        return info

    async def get(self, tenant_id: str, conversation_id: str) -> ConversationInfo:
        """Returns one of the tenant's conversations.

        Raises:
            NotFoundError: No such conversation for this tenant (another tenant's
                conversation included, so ids reveal nothing).
        """
        cached = await self._load(tenant_id, conversation_id)
        if cached is not None:
            return cached.info
        async with self._sessions() as session:
            return (await conversation_row(session, tenant_id, conversation_id)).to_info()

    async def list(
        self,
        tenant_id: str,
        limit: int = 20,
        cursor: str | None = None,
        owner: str | None = None,
    ) -> ConversationPage:
        """Returns a page of the tenant's conversations, most recently updated first.

        Pages are keyset-paginated over (updated_at, id), so deep pages cost as
        little as the first. A conversation updated while a client pages moves to
        the front and may be seen again or not at all; none other is skipped.

        Args:
            tenant_id: The tenant.
            limit: Page size, 1 to ``MAX_PAGE_SIZE``.
            cursor: The ``next_cursor`` of the previous page; None for the first.
            owner: Only this owner's conversations; ``None`` lists all of the tenant's.

        Raises:
            InvalidInputError: The limit is out of range.
            InvalidCursorError: The cursor was not issued by this service.
        """
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise InvalidInputError(f"limit is 1 to {MAX_PAGE_SIZE}")
        async with self._sessions() as session:
            items, next_cursor = await conversation_page(session, tenant_id, limit, cursor, owner)
        return ConversationPage(items=items, next_cursor=next_cursor)

    async def delete(self, tenant_id: str, conversation_id: str) -> None:
        """Deletes a conversation with its messages and their feedback.

        Raises:
            NotFoundError: No such conversation for this tenant.
        """
        async with (
            self._hot.writing(tenant_id, conversation_id),  # no record(): the entry is dropped
            self._sessions() as session,
            session.begin(),
        ):
            # Messages and feedback go by ON DELETE CASCADE (SQLite too: db.py
            # turns foreign keys on for every connection).
            result = await session.execute(
                delete(ConversationRow).where(
                    ConversationRow.id == conversation_id,
                    ConversationRow.tenant_id == tenant_id,
                )
            )
            if getattr(result, "rowcount", 0) == 0:
                raise NotFoundError("conversation not found")

    async def messages(self, tenant_id: str, conversation_id: str) -> builtins.list[MessageInfo]:
        """Returns every message of a conversation, oldest first.

        Raises:
            NotFoundError: No such conversation for this tenant.
        """
        cached = await self._load(tenant_id, conversation_id)
        if cached is not None and cached.complete:
            return list(cached.messages)
        async with self._sessions() as session:
            await conversation_row(session, tenant_id, conversation_id)
            rows = await session.scalars(
                select(MessageRow)
                .where(MessageRow.conversation_id == conversation_id)
                .order_by(MessageRow.created_at, MessageRow.id)
            )
            return [row.to_info() for row in rows]

    async def message_page(
        self, tenant_id: str, conversation_id: str, limit: int = 50, cursor: str | None = None
    ) -> MessagePage:
        """Returns a page of a conversation's messages, oldest first within the page.

        The first page holds the newest ``limit`` messages (what a client shows first,
        and where a WebSocket ``resume`` continues); each ``next_cursor`` pages back
        to older ones. Pages are keyset-paginated over (created_at, id): messages
        added while a client pages back are newer than its first page and never
        shift the older pages.

        Args:
            tenant_id: The tenant.
            conversation_id: The conversation.
            limit: Page size, 1 to ``MAX_MESSAGE_PAGE_SIZE``.
            cursor: The ``next_cursor`` of the previous page; None for the newest.

        Raises:
            NotFoundError: No such conversation for this tenant.
            InvalidInputError: The limit is out of range.
            InvalidCursorError: The cursor was not issued by this method.
        """
        if not 1 <= limit <= MAX_MESSAGE_PAGE_SIZE:
            raise InvalidInputError(f"limit is 1 to {MAX_MESSAGE_PAGE_SIZE}")
        if cursor is None:
            newest = await self.recent_messages(tenant_id, conversation_id, limit + 1)
        else:
            async with self._sessions() as session:
                await conversation_row(session, tenant_id, conversation_id)
                newest = await newest_messages(session, conversation_id, limit + 1, cursor)
        items = newest[-limit:]
        next_cursor = older_cursor(items[0]) if len(newest) > limit else None
        return MessagePage(items=items, next_cursor=next_cursor)

    async def recent_messages(
        self, tenant_id: str, conversation_id: str, limit: int
    ) -> builtins.list[MessageInfo]:
        """Returns the last ``limit`` messages of a conversation, oldest first.

        Raises:
            NotFoundError: No such conversation for this tenant.
            InvalidInputError: A negative limit.
        """
        if limit < 0:
            raise InvalidInputError("limit is not negative")
        if limit <= self._hot.max_messages:
            cached = await self._load(tenant_id, conversation_id)
            if cached is not None and (cached.complete or len(cached.messages) >= limit):
                return list(cached.messages[len(cached.messages) - limit :])
        async with self._sessions() as session:
            await conversation_row(session, tenant_id, conversation_id)
            return await newest_messages(session, conversation_id, limit)

    async def add_user_message(
        self, tenant_id: str, conversation_id: str, content: str
    ) -> MessageInfo:
        """Stores a user message; it is committed when this returns.

        The conversation is touched (it moves to the front of ``list``) and, if it has
        no title yet, titled from this message.

        Raises:
            NotFoundError: No such conversation for this tenant.
            InvalidInputError: Empty content.
        """
        if not content.strip():
            raise InvalidInputError("a message has content")
        async with (
            self._hot.writing(tenant_id, conversation_id) as hot,
            self._sessions() as session,
            session.begin(),
        ):
            conversation = await conversation_row(session, tenant_id, conversation_id)
            created_at = await next_timestamp(session, conversation_id)
            row = MessageRow(
                conversation_id=conversation_id,
                tenant_id=tenant_id,
                role="user",
                content=content,
                status="complete",
                sources=[],
                citations=[],
                usage={},
                timings={},
                created_at=created_at,
            )
            session.add(row)
            conversation.updated_at = max(conversation.updated_at, created_at)
            if conversation.title is None:
                conversation.title = title_from(content)
            await session.flush()
            hot.record(conversation.to_info(), row.to_info())
        return row.to_info()

    async def record_assistant_message(
        self,
        *,
        tenant_id: str,
        conversation_id: str,
        message_id: str,
        content: str,
        status: MessageStatus,
        finish_reason: str | None,
        model: str | None,
        model_version: str | None,
        sources: Sequence[Mapping[str, Any]],
        citations: Sequence[Mapping[str, Any]],
        usage: Mapping[str, int],
        timings: Mapping[str, float],
        error: str | None = None,
        error_code: str | None = None,
        heartbeat_at: datetime | None = None,
    ) -> MessageInfo:
        """Stores the assistant message of a turn that has ended, however it ended.

        Args:
            tenant_id: The owner.
            conversation_id: The conversation of the turn.
            message_id: The id chosen when the turn began (``conversation.new_id()``),
                so that clients could be told it before generation.
            content: The text produced (so far, for a cancelled or failed turn).
            status: ``complete``, ``cancelled``, ``failed``, ``refused`` (safety), or
                ``streaming`` with a ``heartbeat_at`` (see ``conversation.streaming``).
            finish_reason: Why generation stopped (``stop``, ``length``, ``cancelled``...).
            model: The model name that answered.
            model_version: The version of that model that answered.
            sources: The retrieved chunks shown to the model, as JSON objects.
            citations: The citations found in the answer, as JSON objects.
            usage: ``prompt_tokens`` and ``completion_tokens``.
            timings: Milliseconds per pipeline stage.
            error: What went wrong, for a failed turn: a sentence safe to show.
            error_code: Its code (``generation_failed``...).

        Raises:
            NotFoundError: No such conversation for this tenant.
            ConflictError: A message with this id exists already.
            InvalidInputError: An unknown status or a malformed message id.
        """
        _check_id(message_id)
        if status not in get_args(MessageStatus):
            raise InvalidInputError(f"unknown message status {status!r}")
        try:
            async with (
                self._hot.writing(tenant_id, conversation_id) as hot,
                self._sessions() as session,
                session.begin(),
            ):
                conversation = await conversation_row(session, tenant_id, conversation_id)
                created_at = await next_timestamp(session, conversation_id)
                row = MessageRow(
                    id=message_id,
                    conversation_id=conversation_id,
                    tenant_id=tenant_id,
                    role="assistant",
                    content=content,
                    status=status,
                    finish_reason=finish_reason,
                    model=model,
                    model_version=model_version,
                    sources=[dict(source) for source in sources],
                    citations=[dict(citation) for citation in citations],
                    usage=dict(usage),
                    timings=dict(timings),
                    error=error,
                    error_code=error_code,
                    created_at=created_at,
                    heartbeat_at=heartbeat_at,
                )
                session.add(row)
                conversation.updated_at = max(conversation.updated_at, created_at)
                await session.flush()
                hot.record(conversation.to_info(), row.to_info())
        except IntegrityError as exc:
            raise ConflictError("a message with this id exists") from exc
        return row.to_info()

    async def get_message(self, tenant_id: str, message_id: str) -> MessageInfo:
        """Returns one of the tenant's messages.

        Raises:
            NotFoundError: No such message for this tenant.
        """
        async with self._sessions() as session:
            row = await session.scalar(
                select(MessageRow).where(
                    MessageRow.id == message_id, MessageRow.tenant_id == tenant_id
                )
            )
        if row is None:
            raise NotFoundError("message not found")
        return row.to_info()

    async def _load(self, tenant_id: str, conversation_id: str) -> CachedConversation | None:
        """The hot entry of a conversation: a hit, or read from SQL and filled.

        ``None`` when the hot state may not be used now (none configured, a write
        in flight, Redis away): the caller reads SQL itself.

        Raises:
            NotFoundError: No such conversation for this tenant (read from SQL).
        """
        found = await self._hot.lookup(tenant_id, conversation_id)
        if found.entry is not None or not found.fillable:
            return found.entry
        keep = self._hot.max_messages
        async with self._sessions() as session:
            row = await conversation_row(session, tenant_id, conversation_id)
            newest = await newest_messages(session, conversation_id, keep + 1)
        entry = CachedConversation(row.to_info(), tuple(newest[-keep:]), len(newest) <= keep)
        await self._hot.fill(tenant_id, conversation_id, found.version, entry)
        return entry
