"""Graceful drain on SIGTERM: stop taking turns, let running ones finish, then exit.

uvicorn alone, on SIGTERM, stops listening and closes WebSockets with 1012 at
once: a streaming answer would be cut, and a load balancer would learn of it
only from refused connections. ``DrainingServer`` puts a drain in front:

1. ``/readyz`` answers 503 and new turns get 503 with ``Retry-After`` (the
   listener stays open, so clients are told rather than refused);
2. running turns get up to ``drain_grace_s`` to finish;
3. those still running end with finish reason ``interrupted``, stored as such;
4. uvicorn's own shutdown runs (its graceful timeout matches the grace period).

A second SIGTERM, or SIGINT, skips the drain.
"""

from __future__ import annotations

import asyncio
import signal
import time
from typing import TYPE_CHECKING

import structlog
import uvicorn

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import FrameType

    from app.chat.pipeline import TurnPipeline

__all__ = ["Drain", "DrainingServer"]

log = structlog.get_logger(__name__)
_POLL_S = 0.05
_STORE_TIMEOUT_S = 10.0


class Drain:
    """Whether this process is draining, and the drain itself."""

    def __init__(self, grace_s: float, pipeline: TurnPipeline | None) -> None:
        """Args:
        grace_s: Seconds running turns may take to finish.
        pipeline: The turns of this process; ``None`` where it generates nothing.
        """
        self.grace_s = grace_s
        self.draining = False
        self._pipeline = pipeline

    async def run(self) -> None:
        """Refuse new turns, wait (bounded) for running ones, interrupt the rest."""
        self.draining = True
        pipeline = self._pipeline
        if pipeline is None:
            return
        pipeline.drain()
        log.info("drain_started", running=len(pipeline.progress()), grace_s=self.grace_s)
        if not await _until_idle(pipeline, self.grace_s):
            log.info("drain_interrupting", running=len(pipeline.progress()))
            await pipeline.interrupt_all()
            await _until_idle(pipeline, _STORE_TIMEOUT_S)
        log.info("drain_finished")


async def _until_idle(pipeline: TurnPipeline, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while pipeline.progress():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(_POLL_S)
    return True


class DrainingServer(uvicorn.Server):
    """A uvicorn server that drains (``Drain``) before it shuts down on SIGTERM."""

    def __init__(self, config: uvicorn.Config, drain: Callable[[], Drain | None]) -> None:
        """Args:
        config: uvicorn's configuration.
        drain: The app's drain, once its lifespan has started (``None`` before).
        """
        super().__init__(config)
        self._drain = drain
        self._draining: asyncio.Task[None] | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """A signal arrived (in the main thread, between two steps of the event loop)."""
        drain = self._drain()
        if sig != signal.SIGTERM or drain is None or self._draining is not None:
            super().handle_exit(sig, frame)
            return
        loop = asyncio.get_event_loop()
        # NOTE: call_soon_threadsafe wakes a loop asleep in select(); the task is
        # made inside the loop, not in the signal handler.
        loop.call_soon_threadsafe(self._start_drain, drain, sig, frame)

    def _start_drain(self, drain: Drain, sig: int, frame: FrameType | None) -> None:
        if self._draining is None:
            self._draining = asyncio.create_task(self._drain_then_exit(drain, sig, frame))

    async def _drain_then_exit(self, drain: Drain, sig: int, frame: FrameType | None) -> None:
        try:
            await drain.run()
        except Exception as exc:
            log.warning("drain_failed", error=repr(exc))
        super().handle_exit(sig, frame)
