"""The ingestion queue in this process's memory (the embedded default)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from retrieval.ingest_queue.base import (
    DEAD_LETTERS_KEPT,
    DEFAULT_CLAIM_IDLE_S,
    DEFAULT_MAX_DELIVERIES,
    DEFAULT_MAX_QUEUED,
    Delivery,
    IngestQueue,
    queue_full,
)
from retrieval.types import IngestJob


@dataclass
class _Entry:
    job: IngestJob
    consumer: str | None = None
    touched: float = 0.0
    deliveries: int = 0


@dataclass
class InProcessIngestQueue(IngestQueue):
    """An ``IngestQueue`` in this process's memory (the embedded default).

    Same semantics as the Redis one, so the same contract tests pass on both;
    entries die with the process (``durable`` is false), which the service makes
    up for by re-queueing the stored uploads on start.
    """

    claim_idle_s: float = DEFAULT_CLAIM_IDLE_S
    max_deliveries: int = DEFAULT_MAX_DELIVERIES
    max_queued: int = DEFAULT_MAX_QUEUED
    _entries: OrderedDict[str, _Entry] = field(default_factory=OrderedDict)
    _new: deque[str] = field(default_factory=deque)
    _dead: deque[IngestJob] = field(default_factory=lambda: deque(maxlen=DEAD_LETTERS_KEPT))
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def durable(self) -> bool:
        return False

    async def ensure_ready(self) -> None:
        return None

    async def put(self, job: IngestJob) -> str:
        if len(self._entries) >= self.max_queued:
            raise queue_full(self.max_queued)
        entry_id = f"{next(self._ids)}-0"
        self._entries[entry_id] = _Entry(job)
        self._new.append(entry_id)
        self._arrived.set()
        return entry_id

    async def has_room(self) -> bool:
        return len(self._entries) < self.max_queued

    async def receive(self, consumer: str, timeout_s: float) -> Delivery | None:
        deadline = time.monotonic() + timeout_s
        while True:
            now = time.monotonic()
            delivery = self._claim_stuck(consumer, now) or self._take_new(consumer, now)
            if delivery is not None:
                return delivery
            remaining = deadline - now
            if remaining <= 0:
                return None
            self._arrived.clear()
            # Wake for a new entry, or when the oldest lease could have expired.
            wait = min(remaining, self._next_expiry(now))
            # NOTE: asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a
            # cancellation that lands as the event fires, and a stopped worker lives on.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(wait, 0.001)):
                    await self._arrived.wait()

    def _deliver(self, entry_id: str, entry: _Entry, consumer: str, now: float) -> Delivery:
        entry.consumer, entry.touched = consumer, now
        entry.deliveries += 1
        if entry.deliveries > self.max_deliveries:
            del self._entries[entry_id]
            self._dead.append(entry.job)
            return Delivery(entry_id, entry.job, entry.deliveries, dead=True)
        return Delivery(entry_id, entry.job, entry.deliveries)

    def _claim_stuck(self, consumer: str, now: float) -> Delivery | None:
        for entry_id, entry in self._entries.items():
            if entry.consumer is not None and now - entry.touched >= self.claim_idle_s:
                return self._deliver(entry_id, entry, consumer, now)
        return None

    def _take_new(self, consumer: str, now: float) -> Delivery | None:
        while self._new:
            entry_id = self._new.popleft()
            entry = self._entries.get(entry_id)
            if entry is not None:
                return self._deliver(entry_id, entry, consumer, now)
        return None

    def _next_expiry(self, now: float) -> float:
        leased = [e.touched for e in self._entries.values() if e.consumer is not None]
        return min(leased) + self.claim_idle_s - now if leased else self.claim_idle_s

    async def renew(self, consumer: str, delivery: Delivery) -> bool:
        entry = self._entries.get(delivery.entry_id)
        if entry is None or entry.consumer != consumer:
            return False
        entry.touched = time.monotonic()
        return True

    async def ack(self, delivery: Delivery) -> None:
        self._entries.pop(delivery.entry_id, None)

    async def length(self) -> int:
        return len(self._entries)

    async def jobs(self) -> set[IngestJob]:
        return {entry.job for entry in self._entries.values()}

    async def dead_letters(self) -> list[IngestJob]:
        return list(self._dead)
