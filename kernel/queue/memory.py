"""The work queue in this process's memory (the embedded default)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Generic

from kernel.queue.base import (
    DEAD_LETTERS_KEPT,
    DEFAULT_CLAIM_IDLE_S,
    DEFAULT_MAX_DELIVERIES,
    DEFAULT_MAX_QUEUED,
    Delivery,
    J,
    JobKind,
    WorkQueue,
)


@dataclass
class _Entry(Generic[J]):
    job: J
    consumer: str | None = None
    touched: float = 0.0
    deliveries: int = 0


class InProcessQueue(WorkQueue[J]):
    """A ``WorkQueue`` in this process's memory (the embedded default).

    Same semantics as the Redis one, so the same contract tests pass on both;
    entries die with the process (``durable`` is false), which its users make up
    for by re-queueing what they stored on start.
    """

    def __init__(
        self,
        kind: JobKind[J],
        *,
        claim_idle_s: float = DEFAULT_CLAIM_IDLE_S,
        max_deliveries: int = DEFAULT_MAX_DELIVERIES,
        max_queued: int = DEFAULT_MAX_QUEUED,
    ) -> None:
        """Args:
        kind: What the queue carries (only its ``full`` error is used here).
        claim_idle_s: Idle time after which another consumer may claim an entry.
        max_deliveries: Deliveries after which an entry is dead-lettered.
        max_queued: Entries waiting or in progress before ``put`` refuses.
        """
        self.kind = kind
        self.claim_idle_s = claim_idle_s
        self.max_deliveries = max_deliveries
        self.max_queued = max_queued
        self._entries: OrderedDict[str, _Entry[J]] = OrderedDict()
        self._new: deque[str] = deque()
        self._dead: deque[J] = deque(maxlen=DEAD_LETTERS_KEPT)
        self._ids = itertools.count(1)
        self._arrived = asyncio.Event()

    @property
    def durable(self) -> bool:
        return False

    async def ensure_ready(self) -> None:
        return None

    async def put(self, job: J) -> str:
        if len(self._entries) >= self.max_queued:
            raise self.kind.full(self.max_queued)
        entry_id = f"{next(self._ids)}-0"
        self._entries[entry_id] = _Entry(job)
        self._new.append(entry_id)
        self._arrived.set()
        return entry_id

    async def has_room(self) -> bool:
        return len(self._entries) < self.max_queued

    async def receive(self, consumer: str, timeout_s: float) -> Delivery[J] | None:
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

    def _deliver(self, entry_id: str, entry: _Entry[J], consumer: str, now: float) -> Delivery[J]:
        entry.consumer, entry.touched = consumer, now
        entry.deliveries += 1
        if entry.deliveries > self.max_deliveries:
            del self._entries[entry_id]
            self._dead.append(entry.job)
            return Delivery(entry_id, entry.job, entry.deliveries, dead=True)
        return Delivery(entry_id, entry.job, entry.deliveries)

    def _claim_stuck(self, consumer: str, now: float) -> Delivery[J] | None:
        for entry_id, entry in self._entries.items():
            if entry.consumer is not None and now - entry.touched >= self.claim_idle_s:
                return self._deliver(entry_id, entry, consumer, now)
        return None

    def _take_new(self, consumer: str, now: float) -> Delivery[J] | None:
        while self._new:
            entry_id = self._new.popleft()
            entry = self._entries.get(entry_id)
            if entry is not None:
                return self._deliver(entry_id, entry, consumer, now)
        return None

    def _next_expiry(self, now: float) -> float:
        leased = [e.touched for e in self._entries.values() if e.consumer is not None]
        return min(leased) + self.claim_idle_s - now if leased else self.claim_idle_s

    async def renew(self, consumer: str, delivery: Delivery[J]) -> bool:
        entry = self._entries.get(delivery.entry_id)
        if entry is None or entry.consumer != consumer:
            return False
        entry.touched = time.monotonic()
        return True

    async def ack(self, delivery: Delivery[J]) -> None:
        self._entries.pop(delivery.entry_id, None)

    async def length(self) -> int:
        return len(self._entries)

    async def jobs(self) -> set[J]:
        return {entry.job for entry in self._entries.values()}

    async def dead_letters(self) -> list[J]:
        return list(self._dead)
