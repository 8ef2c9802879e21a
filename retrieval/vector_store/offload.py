"""Runs a vector store's blocking calls off the event loop, with a bound on searches.

An embedded engine computes in the calling thread: run on the event loop, a 100k-point
search would hold every other request, token and probe of the process for its whole
duration. ``StoreCalls`` gives a store two small pools instead:

- searches (and counts) run on ``threads`` threads, and at most ``max_waiting`` more
  may wait for one; a search beyond that raises ``VectorStoreOverloadedError`` (429
  with ``Retry-After``) at once, so a burst of cache-bypassing searches is refused,
  not queued without end;
- writes (upserts, deletes, opening and closing) run one at a time on their own
  thread, so ingestion never takes a search thread. They are not refused: the
  ingestion workers that make them are few, which bounds them.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from retrieval.errors import VectorStoreOverloadedError

if TYPE_CHECKING:
    from collections.abc import Callable

P = ParamSpec("P")
T = TypeVar("T")

DEFAULT_THREADS = 2
DEFAULT_MAX_WAITING = 8


class StoreCalls:
    """The threads a vector store's blocking calls run on."""

    def __init__(
        self,
        threads: int = DEFAULT_THREADS,
        max_waiting: int = DEFAULT_MAX_WAITING,
        *,
        name: str = "vector-store",
        retry_after_s: float = 1.0,
    ) -> None:
        """Size the pools; threads start on first use.

        Args:
            threads: Searches that run at once.
            max_waiting: Searches that may wait for a thread; more are refused.
            name: Prefix of the threads' names.
            retry_after_s: ``Retry-After`` of a refused search.

        Raises:
            ValueError: ``threads`` below 1 or ``max_waiting`` below 0.
        """
        if threads < 1 or max_waiting < 0:
            raise ValueError("need threads >= 1 and max_waiting >= 0")
        self._reads = ThreadPoolExecutor(threads, thread_name_prefix=f"{name}-read")
        self._writes = ThreadPoolExecutor(1, thread_name_prefix=f"{name}-write")
        self._limit = threads + max_waiting
        self._retry_after = retry_after_s
        self._lock = threading.Lock()
        self._in_flight = 0

    @property
    def in_flight(self) -> int:
        """Searches running or waiting for a thread now."""
        return self._in_flight

    async def read(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn`` on a search thread.

        Raises:
            VectorStoreOverloadedError: ``threads + max_waiting`` searches are in flight.
        """
        with self._lock:
            if self._in_flight >= self._limit:
                raise VectorStoreOverloadedError(
                    f"the vector store is busy ({self._limit} searches in flight); retry later",
                    self._retry_after,
                )
            self._in_flight += 1

        def run() -> T:
            # NOTE: released by the thread when the work ends, not by the awaiting task:
            # a cancelled request leaves its search running, and it still counts.
            try:
                return fn(*args, **kwargs)
            finally:
                with self._lock:
                    self._in_flight -= 1

        try:
            future = self._reads.submit(run)
        except RuntimeError:
            with self._lock:
                self._in_flight -= 1
            raise
        return await asyncio.wrap_future(future)

    async def write(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn`` on the write thread (one write at a time, in order)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._writes, functools.partial(fn, *args, **kwargs))

    def shutdown(self) -> None:
        """Stop the threads once their work is done."""
        self._reads.shutdown(wait=True)
        self._writes.shutdown(wait=True)
