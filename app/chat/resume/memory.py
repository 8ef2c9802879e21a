"""The in-process token buffer: for one API process (the embedded default)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from app.chat.events import EventKind
from app.chat.resume.base import BufferedEvent, TokenBuffer, in_order, not_found, truncated

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

_POLL_S = 1.0
"""How often a waiting follower wakes to notice that its turn expired."""


@dataclass
class _Turn:
    tenant_id: str
    events: deque[BufferedEvent]
    expires_at: float
    dropped: int = 0
    """Events dropped from the front (``events[0]`` is event number ``dropped``)."""
    finished: bool = False
    cancel: bool = False
    followers: int = 0
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)


class MemoryTokenBuffer(TokenBuffer):
    """``TokenBuffer`` in this process's memory, bounded per turn and by TTL."""

    def __init__(self, *, ttl_s: float = 300.0, max_events: int = 4096) -> None:
        self._ttl_s = ttl_s
        self._max_events = max_events
        self._turns: dict[str, _Turn] = {}

    def _live(self, message_id: str) -> _Turn | None:
        turn = self._turns.get(message_id)
        if turn is not None and turn.expires_at <= time.monotonic():
            del self._turns[message_id]
            return None
        return turn

    def holds(self, message_id: str) -> bool:
        """Whether a live turn ``message_id`` is buffered here."""
        return self._live(message_id) is not None

    def _sweep(self) -> None:
        now = time.monotonic()
        for message_id in [m for m, t in self._turns.items() if t.expires_at <= now]:
            del self._turns[message_id]

    async def _push(self, turn: _Turn, event: BufferedEvent) -> None:
        if len(turn.events) == self._max_events:
            turn.dropped += 1
        turn.events.append(event)
        turn.expires_at = time.monotonic() + self._ttl_s
        async with turn.changed:
            turn.changed.notify_all()

    async def open(self, message_id: str, tenant_id: str) -> None:
        self._sweep()
        self._turns[message_id] = _Turn(
            tenant_id, deque(maxlen=self._max_events), time.monotonic() + self._ttl_s
        )

    async def append(self, message_id: str, index: int, text: str) -> bool:
        turn = self._live(message_id)
        if turn is None:
            return False
        await self._push(turn, BufferedEvent(EventKind.TOKEN, {"index": index, "text": text}))
        return turn.cancel

    async def finish(self, message_id: str, kind: EventKind, payload: dict[str, Any]) -> None:
        turn = self._live(message_id)
        if turn is None:
            return
        turn.finished = True
        await self._push(turn, BufferedEvent(kind, payload))

    async def subscribe(
        self, message_id: str, tenant_id: str, after_index: int
    ) -> AsyncGenerator[BufferedEvent, None]:
        turn = self._live(message_id)
        if turn is None or turn.tenant_id != tenant_id:
            raise not_found(message_id)
        first = turn.events[0] if turn.events else None
        if (
            first is not None
            and first.type == EventKind.TOKEN
            and first.payload["index"] > after_index + 1
        ):
            raise truncated(message_id, after_index)
        return in_order(message_id, after_index, self._follow(message_id, turn))

    async def _follow(self, message_id: str, turn: _Turn) -> AsyncGenerator[BufferedEvent, None]:
        position = turn.dropped  # the number of the next event to yield
        turn.followers += 1
        try:
            while True:
                while position < turn.dropped + len(turn.events):
                    # A follower further behind than the buffer holds skips ahead;
                    # ``in_order`` reports the gap.
                    position = max(position, turn.dropped)
                    event = turn.events[position - turn.dropped]
                    position += 1
                    yield event
                    if event.terminal:
                        return
                if self._live(message_id) is not turn:
                    yield BufferedEvent(EventKind.ERROR, not_found(message_id).to_payload())
                    return
                async with turn.changed:
                    if position >= turn.dropped + len(turn.events):
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(turn.changed.wait(), _POLL_S)
        finally:
            turn.followers -= 1

    async def request_cancel(self, message_id: str, tenant_id: str) -> bool:
        turn = self._live(message_id)
        if turn is None or turn.tenant_id != tenant_id or turn.finished:
            return False
        turn.cancel = True
        return True

    async def followed(self, message_id: str) -> bool:
        turn = self._live(message_id)
        return turn is not None and turn.followers > 0
