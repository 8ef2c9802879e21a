"""Prefetch: warm the chunk cache for a conversation's likely next question, off the request path.

A bounded queue and one worker task per process. ``submit`` never waits: when the
queue is full the prefetch is dropped (and counted), since a prefetch is only ever
a bet and must never slow a turn or pile up behind a slow vector store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

from kernel.tasks import stop_task
from retrieval.metrics import PREFETCHES
from retrieval.types import SearchRequest

Warm = Callable[[SearchRequest], Awaitable[bool]]
"""Runs one prefetch; ``True`` when it admitted candidates."""

_log = structlog.get_logger(__name__)


class Prefetcher:
    """Runs prefetches one at a time from a bounded queue."""

    def __init__(self, warm: Warm, max_queued: int = 32) -> None:
        """Configure it; the worker starts with the first prefetch.

        Args:
            warm: What a prefetch does (the search path's ``warm``).
            max_queued: Prefetches that may wait; more are dropped.
        """
        if max_queued < 1:
            raise ValueError("max_queued must be at least 1")
        self._warm = warm
        self._max_queued = max_queued
        self._queue: asyncio.Queue[SearchRequest] | None = None
        self._worker: asyncio.Task[None] | None = None
        self.done = 0
        """Prefetches that ran and admitted candidates."""
        self.dropped = 0
        """Prefetches refused because the queue was full."""

    def submit(self, request: SearchRequest) -> bool:
        """Queue a prefetch; ``False`` (dropped) when the queue is full."""
        queue = self._ensure_worker()
        try:
            queue.put_nowait(request)
        except asyncio.QueueFull:
            self.dropped += 1
            PREFETCHES.labels("dropped").inc()
            return False
        return True

    async def join(self) -> None:
        """Wait until every queued prefetch has run (tests, and orderly shutdown)."""
        if self._queue is not None and self._worker is not None and not self._worker.done():
            await self._queue.join()

    def _ensure_worker(self) -> asyncio.Queue[SearchRequest]:
        loop = asyncio.get_running_loop()
        worker = self._worker
        if self._queue is None or worker is None or worker.done() or worker.get_loop() is not loop:
            self._queue = asyncio.Queue(self._max_queued)
            self._worker = loop.create_task(self._run(self._queue), name="chunk-prefetch")
        return self._queue

    async def _run(self, queue: asyncio.Queue[SearchRequest]) -> None:
        while True:
            request = await queue.get()
            try:
                admitted = await self._warm(request)
                if admitted:
                    self.done += 1
                PREFETCHES.labels("admitted" if admitted else "skipped").inc()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # NOTE: a failed prefetch costs nothing but the bet; never crash the worker.
                PREFETCHES.labels("failed").inc()
                _log.warning("prefetch_failed", error=str(exc))
            finally:
                queue.task_done()

    async def close(self) -> None:
        """Stop the worker; queued prefetches are dropped."""
        worker, self._worker = self._worker, None
        await stop_task(worker)
        self._queue = None
