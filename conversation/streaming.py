"""Answers stored while they stream, so that a crash leaves a row and not a hole.

An assistant message is inserted as ``streaming`` when its turn starts: the id the
client was told exists at once. While it streams, the process writing it
refreshes ``heartbeat_at`` and the text produced so far (``heartbeat``); when the
turn ends, ``finish`` writes the answer over it. A ``streaming`` row whose
heartbeat went stale belonged to a process that died: ``interrupt_stale`` marks it
``interrupted``, keeping its text (or the longer text a resume buffer still holds).

NOTE: several API processes may share one database, so a process that starts may
not mark every ``streaming`` row: another live process may be writing it. A row is
taken for dead only when nobody refreshed it for longer than the stale period
(several heartbeat periods), which holds whoever owns it, with no registry of
processes to keep.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select, update

from conversation.conversations import ConversationService
from conversation.errors import ConflictError
from conversation.hot_state.base import NoHotState
from conversation.models import MessageRow
from kernel.orm import utcnow

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping, Sequence

    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from conversation.hot_state.base import HotState
    from conversation.types import MessageInfo, MessageStatus

__all__ = ["INTERRUPTED_REASON", "AnswerStreams"]

INTERRUPTED_REASON = "interrupted"
"""The finish reason of an answer its process stopped writing (a crash or a drain)."""


class AnswerStreams:
    """The life of an assistant message from its first token to its stored end."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], hot: HotState | None = None
    ) -> None:
        """Args:
        sessions: Sessions on the database of record.
        hot: The conversations' hot state, kept in step with the rows written here.
        """
        self._sessions = sessions
        self._hot = hot or NoHotState()
        self._conversations = ConversationService(sessions, self._hot)

    async def start(
        self,
        tenant_id: str,
        conversation_id: str,
        message_id: str,
        *,
        model: str | None,
        model_version: str | None,
    ) -> MessageInfo:
        """Insert the empty ``streaming`` answer of a turn that starts now.

        Raises:
            NotFoundError: No such conversation for this tenant.
            ConflictError: A message with this id exists already.
        """
        return await self._conversations.record_assistant_message(
            tenant_id=tenant_id,
            conversation_id=conversation_id,
            message_id=message_id,
            content="",
            status="streaming",
            finish_reason=None,
            model=model,
            model_version=model_version,
            sources=[],
            citations=[],
            usage={},
            timings={},
            heartbeat_at=utcnow(),
        )

    async def heartbeat(self, progress: Mapping[str, str]) -> None:
        """Vouch for the answers this process is writing: their text so far, and now."""
        if not progress:
            return
        now = utcnow()
        async with self._sessions() as session, session.begin():
            for message_id, content in progress.items():
                await session.execute(
                    update(MessageRow)
                    .where(MessageRow.id == message_id, MessageRow.status == "streaming")
                    .values(content=content, heartbeat_at=now)
                )

    async def finish(
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
    ) -> MessageInfo:
        """Write the end of a turn over its ``streaming`` row (inserted if it has none).

        Raises:
            NotFoundError: No such conversation for this tenant.
            ConflictError: The message exists and has already ended.
        """
        fields: dict[str, Any] = {
            "content": content,
            "status": status,
            "finish_reason": finish_reason,
            "model": model,
            "model_version": model_version,
            "sources": [dict(source) for source in sources],
            "citations": [dict(citation) for citation in citations],
            "usage": dict(usage),
            "timings": dict(timings),
            "error": error,
            "error_code": error_code,
            "heartbeat_at": None,
        }
        # NOTE: no ``record``: the hot entry is dropped and refilled from SQL,
        # rather than taught to replace a message it holds.
        async with (
            self._hot.writing(tenant_id, conversation_id),
            self._sessions() as session,
            session.begin(),
        ):
            row = await session.scalar(
                select(MessageRow).where(
                    MessageRow.id == message_id, MessageRow.tenant_id == tenant_id
                )
            )
            if row is not None:
                if row.status != "streaming":
                    raise ConflictError("this message has already ended")
                for name, value in fields.items():
                    setattr(row, name, value)
                await session.flush()
                return row.to_info()
        del fields["heartbeat_at"]
        return await self._conversations.record_assistant_message(
            tenant_id=tenant_id,
            conversation_id=conversation_id,
            message_id=message_id,
            **fields,
        )

    async def interrupt_stale(
        self,
        stale_s: float,
        recover: Callable[[str], Awaitable[str | None]] | None = None,
        *,
        keep: Sequence[str] = (),
    ) -> list[str]:
        """Mark ``interrupted`` the answers nobody vouched for in ``stale_s`` seconds.

        Args:
            stale_s: A heartbeat older than this means the writing process died.
            recover: The text a resume buffer still holds for a message, if any; it
                replaces the stored text when it is longer. Its errors are ignored.
            keep: Message ids this process is writing (never stale).

        Returns:
            The ids of the answers marked.
        """
        cutoff = utcnow() - timedelta(seconds=stale_s)
        async with self._sessions() as session:
            rows = (
                await session.scalars(
                    select(MessageRow).where(
                        MessageRow.status == "streaming",
                        or_(MessageRow.heartbeat_at.is_(None), MessageRow.heartbeat_at < cutoff),
                    )
                )
            ).all()
        marked: list[str] = []
        for row in rows:
            if row.id in keep:
                continue
            content = row.content
            if recover is not None:
                try:
                    buffered = await recover(row.id)
                except Exception:
                    buffered = None
                if buffered is not None and len(buffered) > len(content):
                    content = buffered
            if await self._interrupt(row.tenant_id, row.conversation_id, row.id, content, cutoff):
                marked.append(row.id)
        return marked

    async def _interrupt(
        self,
        tenant_id: str,
        conversation_id: str,
        message_id: str,
        content: str,
        cutoff: datetime,
    ) -> bool:
        async with (
            self._hot.writing(tenant_id, conversation_id),
            self._sessions() as session,
            session.begin(),
        ):
            # NOTE: the conditions repeat the query's, so a row a live process
            # refreshed in the meantime is left alone.
            result = await session.execute(
                update(MessageRow)
                .where(
                    MessageRow.id == message_id,
                    MessageRow.status == "streaming",
                    or_(MessageRow.heartbeat_at.is_(None), MessageRow.heartbeat_at < cutoff),
                )
                .values(
                    status="interrupted",
                    finish_reason=INTERRUPTED_REASON,
                    content=content,
                    heartbeat_at=None,
                )
            )
        return bool(result.rowcount)  # type: ignore[attr-defined]
