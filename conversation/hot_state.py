"""Hot conversation state: the header and recent messages of active conversations.

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

``MemoryHotState`` runs this in-process (a bounded LRU with a TTL);
``conversation.hot_state_redis.RedisHotState`` shares it between API processes.
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from conversation.types import ConversationInfo, MessageInfo


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


@dataclass
class _Slot:
    version: int = 0
    writers: int = 0
    lease_until: float = 0.0
    expires_at: float = 0.0
    info: ConversationInfo | None = None
    messages: list[MessageInfo] = field(default_factory=list)
    complete: bool = False

    def clear(self) -> None:
        self.info, self.messages, self.complete = None, [], False


class MemoryHotState(HotState):
    """The in-process hot state: a bounded LRU of conversations, each with a TTL.

    NOTE: hand-written rather than an LRU library because an entry carries the
    version and write lease above, which no cache library models; the whole
    state machine is a few dict operations with no await in between, so each
    method is atomic on the event loop.
    """

    def __init__(
        self,
        *,
        max_conversations: int = 2048,
        max_messages: int = 32,
        ttl_s: float = 900.0,
        write_lease_s: float = 10.0,
    ) -> None:
        self.max_messages = max_messages
        self._max_conversations = max_conversations
        self._ttl_s = ttl_s
        self._lease_s = write_lease_s
        self._slots: OrderedDict[tuple[str, str], _Slot] = OrderedDict()

    def _slot(self, tenant_id: str, conversation_id: str) -> _Slot:
        key, now = (tenant_id, conversation_id), time.monotonic()
        slot = self._slots.get(key)
        if slot is None or slot.expires_at <= now:
            slot = _Slot()
            self._slots[key] = slot
        self._slots.move_to_end(key)
        slot.expires_at = now + self._ttl_s
        while len(self._slots) > self._max_conversations:
            self._slots.popitem(last=False)
        return slot

    async def lookup(self, tenant_id: str, conversation_id: str) -> Lookup:
        slot = self._slot(tenant_id, conversation_id)
        if slot.writers > 0:
            if slot.lease_until > time.monotonic():
                return Lookup(None, slot.version, fillable=False)
            # The writer's lease ran out: what this slot holds may be stale.
            slot.version += 1
            slot.writers = 0
            slot.clear()
            return Lookup(None, slot.version, fillable=True)
        if slot.info is None:
            return Lookup(None, slot.version, fillable=True)
        return Lookup(
            CachedConversation(slot.info, tuple(slot.messages), slot.complete),
            slot.version,
            fillable=False,
        )

    async def fill(
        self, tenant_id: str, conversation_id: str, version: int, entry: CachedConversation
    ) -> None:
        slot = self._slot(tenant_id, conversation_id)
        if slot.version != version or slot.writers > 0:
            return
        slot.info = entry.info
        slot.messages = list(entry.messages[-self.max_messages :]) if self.max_messages else []
        slot.complete = entry.complete and len(slot.messages) == len(entry.messages)

    async def begin_write(self, tenant_id: str, conversation_id: str) -> int:
        slot, now = self._slot(tenant_id, conversation_id), time.monotonic()
        if slot.writers > 0 and slot.lease_until <= now:
            slot.writers = 0
            slot.clear()
        slot.writers += 1
        slot.lease_until = now + self._lease_s
        slot.version += 1
        return slot.version

    async def end_write(
        self, tenant_id: str, conversation_id: str, version: int, write: PendingWrite | None
    ) -> None:
        slot = self._slot(tenant_id, conversation_id)
        slot.writers = max(slot.writers - 1, 0)
        alone = slot.writers == 0 and slot.version == version
        if write is None or write.info is None or not alone or slot.info is None:
            slot.clear()
            return
        slot.info = write.info
        if write.message is not None:
            slot.messages.append(write.message)
            if len(slot.messages) > self.max_messages:
                del slot.messages[: len(slot.messages) - self.max_messages]
                slot.complete = False


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def dump_info(info: ConversationInfo) -> str:
    """A conversation header as JSON (for a shared hot state)."""
    return json.dumps({k: _jsonable(v) for k, v in asdict(info).items()}, separators=(",", ":"))


def load_info(raw: str | bytes) -> ConversationInfo:
    data = json.loads(raw)
    data["created_at"] = datetime.fromisoformat(data["created_at"])
    data["updated_at"] = datetime.fromisoformat(data["updated_at"])
    return ConversationInfo(**data)


def dump_message(message: MessageInfo) -> str:
    """A message as JSON (for a shared hot state)."""
    data = {k: _jsonable(v) for k, v in asdict(message).items()}
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def load_message(raw: str | bytes) -> MessageInfo:
    data = json.loads(raw)
    data["created_at"] = datetime.fromisoformat(data["created_at"])
    return MessageInfo(**data)
