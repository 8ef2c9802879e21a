"""The ``resume`` message: replay a turn after a reconnect, then follow it live."""

from __future__ import annotations

from contextlib import aclosing
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from app.core.errors import UnprocessableError
from app.entrypoints.ws.protocol import ResumePayload, validation_reason

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

    from app.chat.resume import BufferedEvent, TokenBuffer
    from app.chat.runner import Sink


async def open_replay(
    buffer: TokenBuffer, tenant_id: str, payload: dict[str, Any]
) -> tuple[str, AsyncGenerator[BufferedEvent, None]]:
    """Check a ``resume`` payload and subscribe to its turn.

    Returns:
        The turn's message id and its events after the index the client saw.

    Raises:
        UnprocessableError: A malformed payload.
        ResourceNotFoundError: No such turn for this tenant, or it is too old.
    """
    try:
        resume = ResumePayload.model_validate(payload)
    except ValidationError as exc:
        raise UnprocessableError(validation_reason(exc)) from exc
    events = await buffer.subscribe(resume.message_id, tenant_id, resume.after_index)
    return resume.message_id, events


async def replay(events: AsyncGenerator[BufferedEvent, None], send: Sink) -> None:
    """Send a resumed turn's events until its ``done`` or ``error``."""
    async with aclosing(events):
        async for event in events:
            await send(event.type, event.payload)
