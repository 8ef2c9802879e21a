"""The token buffer of resumable streams: the interface (``memory.py``, ``redis.py`` below).

While a turn runs, its producer (``app.chat.runner.TurnRunner``) appends every
token and, at the end, its ``done`` or ``error``. A client that lost its socket
subscribes with the last token index it saw and gets the rest: the buffered tokens,
then the live ones, then the end. A turn's events stay buffered for a TTL after its
last event, and at most ``max_events`` of them (the newest).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import aclosing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from app.chat.events import TERMINAL, EventKind
from app.core.errors import ResourceNotFoundError

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator


@dataclass(frozen=True, slots=True)
class BufferedEvent:
    """A wire message of a turn: ``token {index, text}``, ``done {...}`` or ``error {...}``."""

    type: EventKind
    payload: dict[str, Any]

    @property
    def terminal(self) -> bool:
        return self.type in TERMINAL


def not_found(message_id: str) -> ResourceNotFoundError:
    """The one answer for an unknown, expired or another tenant's turn."""
    return ResourceNotFoundError(
        f"No resumable turn has message_id {message_id!r} (unknown, expired or not yours)."
    )


def truncated(message_id: str, after_index: int) -> ResourceNotFoundError:
    return ResourceNotFoundError(
        f"The tokens of {message_id!r} after index {after_index} are no longer buffered."
    )


class TokenBuffer(ABC):
    """Buffers the events of running turns for replay, across API processes or not."""

    @abstractmethod
    async def open(self, message_id: str, tenant_id: str) -> None:
        """Start buffering a turn owned by ``tenant_id``."""

    @abstractmethod
    async def append(self, message_id: str, index: int, text: str) -> bool:
        """Buffer one token; returns True once a client asked to cancel the turn."""

    @abstractmethod
    async def finish(self, message_id: str, kind: EventKind, payload: dict[str, Any]) -> None:
        """Buffer the turn's last event (``done`` or ``error``); the TTL counts from now."""

    @abstractmethod
    async def subscribe(
        self, message_id: str, tenant_id: str, after_index: int
    ) -> AsyncGenerator[BufferedEvent, None]:
        """The turn's tokens after ``after_index``, live ones included, then its end.

        Raises:
            ResourceNotFoundError: No such turn for this tenant (unknown, expired,
                another tenant's), or the tokens asked for were already dropped.
        """

    @abstractmethod
    async def request_cancel(self, message_id: str, tenant_id: str) -> bool:
        """Ask the turn's producer, wherever it runs, to cancel; False if no such turn."""

    @abstractmethod
    async def followed(self, message_id: str) -> bool:
        """Whether a client follows the turn now (its producer then keeps it running)."""

    async def text(self, message_id: str) -> str | None:
        """The text of a turn's buffered tokens, ``None`` when none are held here.

        Read after the turn's process died, to keep what it streamed; an
        in-process buffer died with it.
        """
        return None

    async def close(self) -> None:  # noqa: B027 (optional hook)
        """Release what the buffer holds."""


async def in_order(
    message_id: str, after_index: int, events: AsyncGenerator[BufferedEvent, None]
) -> AsyncGenerator[BufferedEvent, None]:
    """The tokens after ``after_index`` exactly once and in order, then the end.

    A gap (the follower fell further behind than the buffer holds) ends the
    stream with a ``not_found`` error rather than a silently broken answer.
    """
    last = after_index
    async with aclosing(events):
        async for event in events:
            if event.type is EventKind.TOKEN:
                index = int(event.payload["index"])
                if index <= last:
                    continue
                if index != last + 1:
                    yield BufferedEvent(EventKind.ERROR, truncated(message_id, last).to_payload())
                    return
                last = index
            yield event
            if event.terminal:
                return
