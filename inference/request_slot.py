"""One request's state, shared between the event loop and the engine's worker thread."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field

from inference.types import (
    FinishEvent,
    FinishReason,
    GenerationEvent,
    GenerationRequest,
    TokenEvent,
)


@dataclass(eq=False, slots=True)
class RequestSlot:
    """A request in flight: its events go from the worker thread to the caller's loop.

    Attributes:
        request: What was asked.
        loop: The event loop of the ``generate`` caller; events are handed to it
            with ``call_soon_threadsafe`` because ``asyncio.Queue`` is not thread-safe.
        events: Where the caller reads the events.
        aborted: Set by ``abort`` (any thread); the worker checks it every step.
        completion_tokens: Tokens generated so far (written by the worker only).
    """

    request: GenerationRequest
    loop: asyncio.AbstractEventLoop
    events: asyncio.Queue[GenerationEvent] = field(default_factory=asyncio.Queue)
    aborted: threading.Event = field(default_factory=threading.Event)
    completion_tokens: int = 0
    _next_index: int = 0
    _finished: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def finished(self) -> bool:
        """Whether the ``FinishEvent`` has been sent."""
        return self._finished

    def should_cancel(self) -> bool:
        """Whether the request was aborted or its deadline has passed."""
        deadline = self.request.deadline
        return self.aborted.is_set() or (deadline is not None and time.monotonic() >= deadline)

    def emit_text(self, text: str) -> None:
        """Send a ``TokenEvent``; empty text is skipped so indices stay contiguous."""
        if not text:
            return
        with self._lock:
            if self._finished:
                return
            event = TokenEvent(index=self._next_index, text=text)
            self._next_index += 1
        self._send(event)

    def finish(self, reason: FinishReason, error: str | None = None) -> bool:
        """Send the one ``FinishEvent``; return ``False`` if it was already sent."""
        with self._lock:
            if self._finished:
                return False
            self._finished = True
        self._send(
            FinishEvent(
                reason=reason,
                prompt_tokens=len(self.request.prompt_token_ids),
                completion_tokens=self.completion_tokens,
                error=error,
            )
        )
        return True

    def _send(self, event: GenerationEvent) -> None:
        try:
            self.loop.call_soon_threadsafe(self.events.put_nowait, event)
        except RuntimeError:
            # NOTE: the caller's loop is closed, so nobody can read this event any more.
            self.aborted.set()
