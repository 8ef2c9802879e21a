"""Pipeline events as wire messages, shared by the SSE and WebSocket transports."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from app.errors import ApiError, InternalError
from app.turns import SourcesFound, TurnEvent, TurnFinished, TurnStarted
from conversation import MessageInfo
from inference import TokenEvent


def to_wire(event: TurnEvent) -> tuple[str, dict[str, Any]]:
    """The ``(type, payload)`` of a pipeline event, as DESIGN.md §4 names them."""
    if isinstance(event, TokenEvent):
        return "token", {"index": event.index, "text": event.text}
    if isinstance(event, TurnStarted):
        return "conversation", {
            "conversation_id": event.conversation_id,
            "message_id": event.message_id,
            "user_message_id": event.user_message_id,
        }
    if isinstance(event, SourcesFound):
        return "sources", {"chunks": [s.to_dict() for s in event.sources]}
    message = event.message
    if message.status == "failed":
        return "error", {
            "code": "generation_failed",
            "message": message.error or "Generation failed.",
            "message_id": message.id,
        }
    return "done", {
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


def generation_failed(detail: str | None) -> ApiError:
    """The error of a turn whose generation failed (its answer is stored as failed)."""
    error = InternalError(detail or "Generation failed.")
    error.code = "generation_failed"
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
        raise generation_failed(finished.message.error)
    return finished.message
