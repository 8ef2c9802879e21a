"""The hot state's interface, the values it trades in, and the null implementation.

SQL stays the record. ``ConversationService`` reads a conversation through a
``HotState`` and fills it from SQL on a miss; every write goes to SQL first and is
then applied to the hot entry (write-through).

Consistency rests on a version and a write lease per conversation:

- ``begin_write`` (before the SQL write) bumps the version and marks a writer in
  flight; while one is, the entry is neither served nor filled, so readers go to SQL.
- ``end_write`` (after the SQL commit) applies the change only when this writer
  was the only one and nobody bumped the version meanwhile; otherwise it drops
  the entry and the next reader fills it from SQL.
- A writer that never ends (the process died between its SQL commit and the
  hot write) leaves its mark until its lease runs out; the next reader then drops
  the entry, bumps the version and fills from SQL. A stale history is never served.
- ``fill`` only lands when the version still equals the one its reader looked up,
  so a reader that read SQL before a concurrent write cannot overwrite its result.

NOTE: ``NoHotState`` lives here rather than in ``memory.py``: it stores nothing,
it is the interface's null object, and it is what ``ConversationService`` uses
when given no hot state, so the service needs this module alone.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from conversation.types import ConversationInfo, MessageInfo

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


@dataclass(frozen=True, slots=True)
class CachedConversation:
    """What the hot state keeps of one conversation.

    ``messages`` are the last messages, oldest first; ``complete`` says they are all
    of the conversation's messages (otherwise there are older ones in SQL only).
    """

    info: ConversationInfo
    messages: tuple[MessageInfo, ...]
    complete: bool


@dataclass(frozen=True, slots=True)
class Lookup:
    """A lookup's answer: the entry on a hit; on a miss, whether and at which version
    the reader may ``fill`` what it reads from SQL."""

    entry: CachedConversation | None
    version: int
    fillable: bool


@dataclass
class PendingWrite:
    """Collects what a write changes; applied to the hot entry after the SQL commit."""

    info: ConversationInfo | None = None
    message: MessageInfo | None = None

    def record(self, info: ConversationInfo, message: MessageInfo | None = None) -> None:
        """The conversation as the write left it, and the message it appended (if any)."""
        self.info, self.message = info, message


class HotState(ABC):
    """Where recent conversation state is served from; swapped by configuration."""

    max_messages: int = 0
    """Messages kept per conversation (the newest)."""

    @abstractmethod
    async def lookup(self, tenant_id: str, conversation_id: str) -> Lookup:
        """The tenant's cached conversation, or how to fill it on a miss."""

    @abstractmethod
    async def fill(
        self, tenant_id: str, conversation_id: str, version: int, entry: CachedConversation
    ) -> None:
        """Store what a reader read from SQL, unless a write came in since ``version``."""

    @abstractmethod
    async def begin_write(self, tenant_id: str, conversation_id: str) -> int:
        """Mark a write in flight (call before the SQL write); returns its version."""

    @abstractmethod
    async def end_write(
        self, tenant_id: str, conversation_id: str, version: int, write: PendingWrite | None
    ) -> None:
        """Apply a committed write, or drop the entry (``write`` None: deleted or failed)."""

    async def close(self) -> None:  # noqa: B027 (optional hook)
        """Release connections."""

    @asynccontextmanager
    async def writing(self, tenant_id: str, conversation_id: str) -> AsyncIterator[PendingWrite]:
        """Bracket one SQL write: ``begin_write`` before, ``end_write`` after.

        The block must commit before it exits. If it raises (or never calls
        ``record``), the entry is dropped rather than guessed at.
        """
        version = await self.begin_write(tenant_id, conversation_id)
        pending = PendingWrite()
        try:
            yield pending
        except BaseException:
            await self.end_write(tenant_id, conversation_id, version, None)
            raise
        await self.end_write(
            tenant_id, conversation_id, version, pending if pending.info is not None else None
        )


class NoHotState(HotState):
    """No cache: every read goes to SQL (a lookup is a miss that must not be filled)."""

    async def lookup(self, tenant_id: str, conversation_id: str) -> Lookup:
        return Lookup(None, 0, fillable=False)

    async def fill(
        self, tenant_id: str, conversation_id: str, version: int, entry: CachedConversation
    ) -> None:
        return None

    async def begin_write(self, tenant_id: str, conversation_id: str) -> int:
        return 0

    async def end_write(
        self, tenant_id: str, conversation_id: str, version: int, write: PendingWrite | None
    ) -> None:
        return None
