"""The ingestion queue: one interface, a Redis Streams and an in-process implementation.

Both give at-least-once delivery (DESIGN §7a). A consumer ``receive``s an entry,
works on it and ``ack``s it when the document's status is final; an entry that is
not acked within ``claim_idle_s`` of its last delivery or lease renewal (the worker
died, was cancelled or its node crashed) goes to the next consumer that asks.
After ``max_deliveries`` deliveries an entry is dead-lettered instead: it is moved
aside and handed out once more marked ``dead``, so a worker can record why the
document failed. Handlers must therefore be idempotent (ingestion is: point ids
are derived from content).

Entries carry an ``IngestJob`` (ids and a content hash), never the document's bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from retrieval.errors import IngestQueueFullError, IngestQueueUnavailableError
from retrieval.types import IngestJob

DEFAULT_CLAIM_IDLE_S = 60.0
DEFAULT_MAX_DELIVERIES = 5
DEFAULT_MAX_QUEUED = 10_000
_DEAD_LETTERS_KEPT = 10_000


@dataclass(frozen=True, slots=True)
class Delivery:
    """One entry handed to a consumer.

    Attributes:
        entry_id: The queue's id of the entry (a stream id in Redis).
        job: What to do.
        deliveries: How many times the entry was handed out, this time included.
        dead: The entry exceeded ``max_deliveries`` and was dead-lettered; record
            the failure and do not process it (``ack`` is then a no-op).
    """

    entry_id: str
    job: IngestJob
    deliveries: int
    dead: bool = False


@runtime_checkable
class IngestQueue(Protocol):
    """A bounded, at-least-once queue of ingestion jobs shared by the workers."""

    @property
    def durable(self) -> bool:
        """Whether entries outlive this process (else the caller re-queues on start)."""
        ...

    async def ensure_ready(self) -> None:
        """Create what the queue needs (a consumer group); idempotent."""
        ...

    async def put(self, job: IngestJob) -> str:
        """Append a job; returns its entry id.

        Raises:
            IngestQueueFullError: ``max_queued`` entries are waiting or in progress.
        """
        ...

    async def has_room(self) -> bool:
        """Whether ``put`` would be accepted now (a hint; ``put`` decides)."""
        ...

    async def receive(self, consumer: str, timeout_s: float) -> Delivery | None:
        """The next entry for ``consumer``: a stuck one first, else a new one.

        Waits up to ``timeout_s`` for one; ``None`` when none came.
        """
        ...

    async def renew(self, consumer: str, delivery: Delivery) -> bool:
        """Reset the entry's idle time so nobody claims it while it is worked on.

        Returns:
            ``False`` when the entry is gone or another consumer holds it now.
        """
        ...

    async def ack(self, delivery: Delivery) -> None:
        """The entry is done: remove it for good."""
        ...

    async def length(self) -> int:
        """Entries waiting or in progress (not yet acked)."""
        ...

    async def dead_letters(self) -> list[IngestJob]:
        """Jobs that were given up on, oldest first (bounded)."""
        ...


def _full(max_queued: int) -> IngestQueueFullError:
    return IngestQueueFullError(
        f"the ingestion queue is full ({max_queued} documents waiting); retry later"
    )


@dataclass
class _Entry:
    job: IngestJob
    consumer: str | None = None
    touched: float = 0.0
    deliveries: int = 0


@dataclass
class InProcessIngestQueue:
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
    _dead: deque[IngestJob] = field(default_factory=lambda: deque(maxlen=_DEAD_LETTERS_KEPT))
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def durable(self) -> bool:
        return False

    async def ensure_ready(self) -> None:
        return None

    async def put(self, job: IngestJob) -> str:
        if len(self._entries) >= self.max_queued:
            raise _full(self.max_queued)
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

    async def dead_letters(self) -> list[IngestJob]:
        return list(self._dead)


# KEYS[1] stream; ARGV[1] max entries, ARGV[2] job. XLEN and XADD in one atomic
# step, so concurrent API nodes cannot overfill the stream between check and add.
_BOUNDED_XADD = """
if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[1]) then return false end
return redis.call('XADD', KEYS[1], '*', 'job', ARGV[2])
"""


class RedisStreamsIngestQueue:
    """An ``IngestQueue`` on a Redis stream read by one consumer group (scaled deployment).

    Acked entries are deleted from the stream (XACK and XDEL together), so its
    length is the number of entries waiting or in progress, which bounds it.
    Dead letters go to the stream ``<stream>:dead``.
    """

    def __init__(
        self,
        redis: Redis,
        stream: str,
        group: str = "ingest",
        *,
        claim_idle_s: float = DEFAULT_CLAIM_IDLE_S,
        max_deliveries: int = DEFAULT_MAX_DELIVERIES,
        max_queued: int = DEFAULT_MAX_QUEUED,
    ) -> None:
        """Configure the queue; nothing is contacted until first use.

        Args:
            redis: A client (``decode_responses`` either way).
            stream: The stream's key, deployment prefix included.
            group: The consumer group every worker of the deployment joins.
            claim_idle_s: Idle time after which another consumer may claim an entry.
            max_deliveries: Deliveries after which an entry is dead-lettered.
            max_queued: Entries waiting or in progress before ``put`` refuses.
        """
        self._redis = redis
        self._stream = stream
        self._dead_stream = f"{stream}:dead"
        self._group = group
        self._claim_idle_ms = max(1, int(claim_idle_s * 1000))
        self.max_deliveries = max_deliveries
        self.max_queued = max_queued
        self._add = redis.register_script(_BOUNDED_XADD)
        self._ready = False

    @property
    def durable(self) -> bool:
        return True

    async def ensure_ready(self) -> None:
        if self._ready:
            return
        try:
            # "0": entries added before the group existed are read too.
            await self._redis.xgroup_create(self._stream, self._group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._ready = True

    async def put(self, job: IngestJob) -> str:
        async with _unavailable_on_error():
            await self.ensure_ready()
            entry_id = await self._add(keys=[self._stream], args=[self.max_queued, _encode(job)])
        if entry_id is None:
            raise _full(self.max_queued)
        return _text(entry_id)

    async def has_room(self) -> bool:
        async with _unavailable_on_error():
            return await self.length() < self.max_queued

    async def receive(self, consumer: str, timeout_s: float) -> Delivery | None:
        await self.ensure_ready()
        claimed = await self._claim_stuck(consumer)
        if claimed is not None:
            return claimed
        block_ms = max(1, int(timeout_s * 1000))
        reply: Any = await self._redis.xreadgroup(
            self._group, consumer, {self._stream: ">"}, count=1, block=block_ms
        )
        for _stream, entries in reply or []:
            for entry_id, fields in entries:
                return Delivery(_text(entry_id), _decode(fields), deliveries=1)
        return None

    async def _claim_stuck(self, consumer: str) -> Delivery | None:
        # XAUTOCLAIM bumps the delivery count of what it claims; XPENDING reads it.
        reply = await self._redis.xautoclaim(
            self._stream, self._group, consumer, self._claim_idle_ms, start_id="0-0", count=1
        )
        entries = reply[1] if reply else []
        for entry_id, fields in entries:
            if fields is None:  # deleted from the stream while pending
                await self._redis.xack(self._stream, self._group, entry_id)
                continue
            job = _decode(fields)
            entry = _text(entry_id)
            pending = await self._redis.xpending_range(
                self._stream, self._group, min=entry, max=entry, count=1
            )
            deliveries = int(pending[0]["times_delivered"]) if pending else 1
            if deliveries > self.max_deliveries:
                await self._dead_letter(entry, job)
                return Delivery(entry, job, deliveries, dead=True)
            return Delivery(entry, job, deliveries)
        return None

    async def _dead_letter(self, entry_id: str, job: IngestJob) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.xadd(
                self._dead_stream,
                {"job": _encode(job), "entry_id": entry_id},
                maxlen=_DEAD_LETTERS_KEPT,
                approximate=True,
            )
            pipe.xack(self._stream, self._group, entry_id)
            pipe.xdel(self._stream, entry_id)
            await pipe.execute()

    async def renew(self, consumer: str, delivery: Delivery) -> bool:
        pending = await self._redis.xpending_range(
            self._stream, self._group, min=delivery.entry_id, max=delivery.entry_id, count=1
        )
        if not pending or _text(pending[0]["consumer"]) != consumer:
            return False
        # NOTE: XCLAIM with JUSTID resets the idle time without counting a delivery.
        await self._redis.xclaim(
            self._stream, self._group, consumer, 0, [delivery.entry_id], justid=True
        )
        return True

    async def ack(self, delivery: Delivery) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.xack(self._stream, self._group, delivery.entry_id)
            pipe.xdel(self._stream, delivery.entry_id)
            await pipe.execute()

    async def length(self) -> int:
        return int(await self._redis.xlen(self._stream))

    async def dead_letters(self) -> list[IngestJob]:
        entries: Any = await self._redis.xrange(self._dead_stream)
        return [_decode(fields) for _entry_id, fields in entries]


@contextlib.asynccontextmanager
async def _unavailable_on_error() -> AsyncIterator[None]:
    """Redis transport failures on the API path as ``IngestQueueUnavailableError`` (503)."""
    try:
        yield
    except (RedisConnectionError, RedisTimeoutError) as exc:
        raise IngestQueueUnavailableError(f"the ingestion queue is unreachable: {exc}") from exc


def _encode(job: IngestJob) -> str:
    return json.dumps(
        {"tenant_id": job.tenant_id, "document_id": job.document_id, "hash": job.content_hash}
    )


def _decode(fields: dict[Any, Any]) -> IngestJob:
    raw = fields.get(b"job", fields.get("job"))
    data = json.loads(_text(raw))
    return IngestJob(data["tenant_id"], data["document_id"], data["hash"])


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
