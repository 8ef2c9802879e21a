"""Turns that outlive their socket: run, buffer for replay, cancel after a grace period.

A WebSocket starts a turn here and receives its events directly. Every token
also goes to the ``TokenBuffer``, so a client that lost its socket can resume the
turn, on this process or another. When the socket goes away the turn keeps
running; if nobody resumes it within the grace period, it is cancelled (and
stored as cancelled, like any cancelled turn).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, aclosing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

import structlog

from app.chat.events import TERMINAL, EventKind, TurnEvent, error_payload, to_wire
from app.chat.turn import TurnRequest
from app.core.errors import classify
from app.core.metrics import ERRORS

if TYPE_CHECKING:
    from app.chat.pipeline import TurnPipeline
    from app.chat.resume.base import TokenBuffer

log = structlog.get_logger(__name__)
_T = TypeVar("_T")

Sink = Callable[[EventKind, dict[str, Any]], Awaitable[None]]
"""Sends one event ``(type, payload)`` to the client; raises when the client is gone."""


@dataclass
class _Turn:
    request: TurnRequest
    sink: Sink | None
    task: asyncio.Task[None] | None = None
    grace: asyncio.Task[None] | None = None
    cancel_sent: bool = False
    buffered: bool = False
    """Whether the turn's events go to the buffer: from the buffer's ``open`` until
    a buffer call fails (then the replay has a gap: it stops, and a hung buffer
    costs this turn one timeout, not one a token)."""


class TurnRunner:
    """The chat turns running on this process, whether or not a socket still watches."""

    def __init__(self, pipeline: TurnPipeline, buffer: TokenBuffer, *, grace_s: float) -> None:
        """Args:
        pipeline: Runs the turns.
        buffer: Where every turn's events are kept for replay.
        grace_s: How long a turn nobody watches keeps running before it is cancelled.
        """
        self._pipeline = pipeline
        self._buffer = buffer
        self._grace_s = grace_s
        self._turns: dict[str, _Turn] = {}

    def start(
        self,
        request: TurnRequest,
        sink: Sink,
        slot: AbstractAsyncContextManager[None] | None = None,
    ) -> asyncio.Task[None]:
        """Run a turn, sending its events to ``sink``; the task ends with the turn.

        Args:
            request: The turn.
            sink: Where its events go while a client watches.
            slot: Held for as long as the turn runs (the caller's concurrent-turn
                budget); when entering it fails, the turn ends with that error.
        """
        turn = _Turn(request, sink)
        self._turns[request.message_id] = turn
        turn.task = asyncio.create_task(self._run(turn, slot))
        return turn.task

    def detach(self, message_id: str) -> None:
        """The turn's client went away: keep it running for the grace period."""
        turn = self._turns.get(message_id)
        if turn is not None:
            turn.sink = None
            self._watch(turn)

    async def cancel(self, message_id: str, tenant_id: str) -> None:
        """Stop a turn at once, whichever process runs it."""
        turn = self._turns.get(message_id)
        if turn is not None and turn.request.tenant_id == tenant_id:
            await self._pipeline.cancel(message_id)
        else:
            await self._safely(self._buffer.request_cancel(message_id, tenant_id))

    async def close(self, timeout_s: float = 30.0) -> None:
        """Cancel every running turn and wait (bounded) until their answers are stored."""
        turns = list(self._turns.values())
        for turn in turns:
            with contextlib.suppress(Exception):
                await self._pipeline.cancel(turn.request.message_id)
        tasks = [turn.task for turn in turns if turn.task is not None]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout_s)
            for task in pending:
                task.cancel()

    async def _run(self, turn: _Turn, slot: AbstractAsyncContextManager[None] | None) -> None:
        request = turn.request
        message_id = request.message_id
        try:
            turn_events = cast("AsyncGenerator[TurnEvent, None]", self._pipeline.run(request))
            async with AsyncExitStack() as stack:
                if slot is not None:
                    await stack.enter_async_context(slot)
                events = await stack.enter_async_context(aclosing(turn_events))
                async for event in events:
                    kind, payload = to_wire(event)
                    if kind is EventKind.CONVERSATION:
                        turn.buffered = await self._open(message_id, request.tenant_id)
                    elif kind is EventKind.TOKEN and turn.buffered:
                        await self._buffer_token(turn, payload)
                    elif kind in TERMINAL and turn.buffered:
                        await self._safely(self._buffer.finish(message_id, kind, payload))
                    await self._deliver(turn, kind, payload)
        except Exception as exc:
            error = classify(exc)
            ERRORS.labels(error.code).inc()
            payload = error_payload(error)
            if turn.buffered:
                await self._safely(self._buffer.finish(message_id, EventKind.ERROR, payload))
            await self._deliver(turn, EventKind.ERROR, payload)
        finally:
            self._turns.pop(message_id, None)
            if turn.grace is not None:
                turn.grace.cancel()

    async def _open(self, message_id: str, tenant_id: str) -> bool:
        try:
            await self._buffer.open(message_id, tenant_id)
        except Exception as exc:
            log.warning("token_buffer_failed", error=repr(exc))
            return False
        return True

    async def _buffer_token(self, turn: _Turn, payload: dict[str, Any]) -> None:
        message_id = turn.request.message_id
        cancel = await self._safely(
            self._buffer.append(message_id, payload["index"], payload["text"])
        )
        if cancel is None:
            turn.buffered = False
        elif cancel and not turn.cancel_sent:
            turn.cancel_sent = True
            await self._pipeline.cancel(message_id)

    async def _deliver(self, turn: _Turn, kind: EventKind, payload: dict[str, Any]) -> None:
        if turn.sink is None:
            return
        try:
            await turn.sink(kind, payload)
        except Exception:
            turn.sink = None
            self._watch(turn)

    def _watch(self, turn: _Turn) -> None:
        if turn.grace is None and turn.task is not None and not turn.task.done():
            turn.grace = asyncio.create_task(self._grace(turn))

    async def _grace(self, turn: _Turn) -> None:
        message_id = turn.request.message_id
        while True:
            await asyncio.sleep(self._grace_s)
            if await self._safely(self._buffer.followed(message_id)):
                continue
            log.info("turn_abandoned", message_id=message_id, grace_s=self._grace_s)
            await self._pipeline.cancel(message_id)
            return

    async def _safely(self, call: Awaitable[_T]) -> _T | None:
        """A buffer call whose failure costs resumability, never the turn."""
        try:
            return await call
        except Exception as exc:
            log.warning("token_buffer_failed", error=repr(exc))
            return None
