"""Micro-batched query embedding: concurrent searches share one model call.

A search waits a few milliseconds for company; the queries that arrived by then
(up to ``max_batch``) are embedded together in one forward pass, in a worker
thread. While a batch runs, the next one gathers, so under load batches grow by
themselves and the model is never called once per request.

The worker thread runs at a lower CPU priority (nice +5, Linux) than the rest of
the process: on a busy machine the streams already running (the engine's decode)
get the CPU before a new search is embedded.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from kernel.tasks import stop_task
from kernel.torch_threads import pin_if_beside_engine
from retrieval.metrics import QUERY_EMBED_BATCH

EmbedBatch = Callable[[Sequence[str]], np.ndarray]
"""Blocking: texts to a ``(len(texts), dimension)`` array of unit rows."""


RECENT = 256
"""Queries whose vectors are remembered."""

NICENESS = 5
"""How much lower than the process's the embedding thread's CPU priority is."""


def _start_thread() -> None:
    # Per thread on Linux (a thread is a task); the torch threads it starts inherit it.
    with contextlib.suppress(AttributeError, OSError):
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + NICENESS)
    pin_if_beside_engine()


class QueryEmbedder:
    """Embeds queries for concurrent callers in micro-batches, off the event loop."""

    def __init__(self, embed: EmbedBatch, window_s: float = 0.003, max_batch: int = 32) -> None:
        """Configure the batcher; its worker starts with the first query.

        Args:
            embed: The blocking batch embedder (e.g. ``Embedder.embed_queries``).
            window_s: How long the first query of a batch waits for others.
            max_batch: Most queries per model call; a full batch goes at once.

        Raises:
            ValueError: A negative window or a batch size below one.
        """
        if window_s < 0 or max_batch < 1:
            raise ValueError("window_s must be >= 0 and max_batch >= 1")
        self._embed = embed
        self._window_s = window_s
        self._max_batch = max_batch
        self._pending: list[tuple[str, asyncio.Future[np.ndarray]]] = []
        self._wakeup: asyncio.Event | None = None
        self._full: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self._thread: ThreadPoolExecutor | None = None
        self._recent: OrderedDict[str, np.ndarray] = OrderedDict()
        self.calls = 0
        """Model calls made so far (a batch is one call)."""

    async def embed(self, text: str) -> np.ndarray:
        """The query's unit vector, embedded together with whatever arrives alongside it.

        The last ``RECENT`` queries' vectors are kept: a turn's search and its response
        cache lookup embed the same question once.
        """
        known = self._recent.get(text)
        if known is not None:
            self._recent.move_to_end(text)
            return known
        wakeup, full = self._ensure_worker()
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self._pending.append((text, future))
        wakeup.set()
        if len(self._pending) >= self._max_batch:
            full.set()
        return await future

    def _ensure_worker(self) -> tuple[asyncio.Event, asyncio.Event]:
        loop = asyncio.get_running_loop()
        worker = self._worker
        if (
            worker is None
            or worker.done()
            or worker.get_loop() is not loop
            or self._wakeup is None
            or self._full is None
        ):
            # First use, or a new event loop (tests run one per test): start afresh.
            self._pending = []
            self._wakeup, self._full = asyncio.Event(), asyncio.Event()
            self._worker = loop.create_task(
                self._run(self._wakeup, self._full), name="query-embedder"
            )
        return self._wakeup, self._full

    async def _run(self, wakeup: asyncio.Event, full: asyncio.Event) -> None:
        while True:
            await wakeup.wait()
            if len(self._pending) < self._max_batch and self._window_s > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(full.wait(), self._window_s)
            batch = self._pending[: self._max_batch]
            self._pending = self._pending[self._max_batch :]
            if not self._pending:
                wakeup.clear()
            if len(self._pending) < self._max_batch:
                full.clear()
            await self._flush(batch)

    async def _flush(self, batch: list[tuple[str, asyncio.Future[np.ndarray]]]) -> None:
        live = [(text, future) for text, future in batch if not future.done()]
        if not live:
            return
        # Identical queries (a retried question, a popular one) are embedded once.
        texts = list(dict.fromkeys(text for text, _ in live))
        self.calls += 1
        QUERY_EMBED_BATCH.observe(len(texts))
        try:
            if self._thread is None:
                self._thread = ThreadPoolExecutor(
                    1, thread_name_prefix="query-embedder", initializer=_start_thread
                )
            loop = asyncio.get_running_loop()
            vectors = await loop.run_in_executor(self._thread, self._embed, texts)
        except asyncio.CancelledError:
            for _, future in live:
                future.cancel()
            raise
        except Exception as exc:
            for _, future in live:
                if not future.done():
                    future.set_exception(exc)
            return
        row = {text: vectors[i] for i, text in enumerate(texts)}
        self._recent.update(row)
        while len(self._recent) > RECENT:
            self._recent.popitem(last=False)
        for text, future in live:
            if not future.done():
                future.set_result(row[text])

    async def close(self) -> None:
        """Stop the worker; queries still waiting get ``CancelledError``."""
        worker, self._worker = self._worker, None
        await stop_task(worker)
        for _, future in self._pending:
            future.cancel()
        self._pending = []
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.shutdown(wait=False)
