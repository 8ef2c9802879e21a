"""The events a chat turn yields, and their one wire form for SSE and WebSocket.

``TurnPipeline.run`` yields ``TurnEvent``s; ``to_wire`` names each with an
``EventKind``, the ``type`` of the WebSocket message or SSE event that carries it.
"""

from __future__ import annotations

from contextlib import aclosing
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from app.chat.prompt import Source
from app.core.errors import ApiError, InternalError
from conversation import MessageInfo
from inference import TokenEvent

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


__all__ = [
    "GENERATION_FAILED",
    "GENERATION_FAILED_CODE",
    "TERMINAL",
    "EventKind",
    "SourcesFound",
    "TurnEvent",
    "TurnFinished",
    "TurnStarted",
    "error_payload",
    "final_message",
    "generation_failed",
    "to_wire",
]


class EventKind(StrEnum):
    """The wire ``type`` of a turn's events (``docs/websocket-protocol.md``)."""

    CONVERSATION = "conversation"
    SOURCES = "sources"
    TOKEN = "token"  # noqa: S105 (an event name, not a secret)
    DONE = "done"
    ERROR = "error"


TERMINAL = frozenset({EventKind.DONE, EventKind.ERROR})
"""The kinds that end a turn's stream."""

GENERATION_FAILED_CODE = "generation_failed"
GENERATION_FAILED = "The model failed while generating the answer; retry the turn."
"""What a failed generation stores and shows; the engine's own error is only logged."""


@dataclass(frozen=True, slots=True)
class TurnStarted:
    """The user message is stored; ``message_id`` names the coming answer."""

    conversation_id: str
    message_id: str
    user_message_id: str


@dataclass(frozen=True, slots=True)
class SourcesFound:
    sources: list[Source]


@dataclass(frozen=True, slots=True)
class TurnFinished:
    """The answer as stored, whatever the ending."""

    message: MessageInfo


TurnEvent = TurnStarted | SourcesFound | TokenEvent | TurnFinished


def to_wire(event: TurnEvent) -> tuple[EventKind, dict[str, Any]]:
    """The ``(kind, payload)`` of a pipeline event on every transport."""
    if isinstance(event, TokenEvent):
        return EventKind.TOKEN, {"index": event.index, "text": event.text}
    if isinstance(event, TurnStarted):
        return EventKind.CONVERSATION, {
            "conversation_id": event.conversation_id,
            "message_id": event.message_id,
            "user_message_id": event.user_message_id,
        }
    if isinstance(event, SourcesFound):
        return EventKind.SOURCES, {"chunks": [s.to_dict() for s in event.sources]}
    message = event.message
    if message.status == "failed":
        return EventKind.ERROR, {
            "code": message.error_code or GENERATION_FAILED_CODE,
            "message": message.error or GENERATION_FAILED,
            "message_id": message.id,
        }
    return EventKind.DONE, {
        "message_id": message.id,
        "finish_reason": message.finish_reason,
        "usage": message.usage,
        "citations": message.citations,
        "timings": message.timings,
    }


def error_payload(error: ApiError) -> dict[str, Any]:
    payload = error.to_payload()
    if error.retry_after is not None:
        payload["retry_after"] = error.retry_after
    return payload


def generation_failed(message: MessageInfo) -> ApiError:
    """The error of a turn whose generation failed (its answer is stored as failed)."""
    error = InternalError(message.error or GENERATION_FAILED)
    error.code = message.error_code or GENERATION_FAILED_CODE
    return error


async def final_message(events: AsyncIterator[TurnEvent]) -> MessageInfo:
    """Run a turn's remaining events to the end; its stored answer.

    Raises:
        ApiError: ``generation_failed`` when generation failed (the answer is stored).
    """
    finished: TurnFinished | None = None
    async with aclosing(events):  # type: ignore[type-var]
        async for event in events:
            if isinstance(event, TurnFinished):
                finished = event
    if finished is None:
        raise InternalError("The turn ended without an answer.")
    if finished.message.status == "failed":
        raise generation_failed(finished.message)
    return finished.message
