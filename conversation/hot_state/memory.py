"""The in-process hot state: a bounded LRU of conversations, each with a TTL."""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field

from conversation.hot_state.base import CachedConversation, HotState, Lookup, PendingWrite
from conversation.types import ConversationInfo, MessageInfo


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
