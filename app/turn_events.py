"""Pipeline events as wire messages, shared by the SSE and WebSocket transports."""

from __future__ import annotations

from typing import Any

from app.errors import ApiError
from app.turns import SourcesFound, TurnEvent, TurnStarted
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
