"""The work queue on a Redis stream, shared by every worker node (scaled deployment)."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

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
from kernel.redis_text import text

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from redis.asyncio import Redis

# KEYS[1] stream; ARGV[1] max entries, ARGV[2] job. XLEN and XADD in one atomic
# step, so concurrent API nodes cannot overfill the stream between check and add.
_BOUNDED_XADD = """
if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[1]) then return false end
return redis.call('XADD', KEYS[1], '*', 'job', ARGV[2])
"""


class RedisStreamsQueue(WorkQueue[J]):
    """A ``WorkQueue`` on a Redis stream read by one consumer group (scaled deployment).

    Acked entries are deleted from the stream (XACK and XDEL together), so its
    length is the number of entries waiting or in progress, which bounds it.
    Dead letters go to the stream ``<stream>:dead``.
    """

    def __init__(
        self,
        redis: Redis,
        kind: JobKind[J],
        stream: str,
        group: str,
        *,
        claim_idle_s: float = DEFAULT_CLAIM_IDLE_S,
        max_deliveries: int = DEFAULT_MAX_DELIVERIES,
        max_queued: int = DEFAULT_MAX_QUEUED,
    ) -> None:
        """Configure the queue; nothing is contacted until first use.

        Args:
            redis: A client (``decode_responses`` either way).
            kind: What the queue carries.
            stream: The stream's key, deployment prefix included.
            group: The consumer group every worker of the deployment joins.
            claim_idle_s: Idle time after which another consumer may claim an entry.
            max_deliveries: Deliveries after which an entry is dead-lettered.
            max_queued: Entries waiting or in progress before ``put`` refuses.
        """
        self._redis = redis
        self.kind = kind
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

    async def put(self, job: J) -> str:
        async with self._unavailable_on_error():
            await self.ensure_ready()
            entry_id = await self._add(
                keys=[self._stream], args=[self.max_queued, self.kind.encode(job)]
            )
        if entry_id is None:
            raise self.kind.full(self.max_queued)
        return text(entry_id)

    async def has_room(self) -> bool:
        async with self._unavailable_on_error():
            return await self.length() < self.max_queued

    async def receive(self, consumer: str, timeout_s: float) -> Delivery[J] | None:
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
                return Delivery(text(entry_id), self._decode(fields), deliveries=1)
        return None

    async def _claim_stuck(self, consumer: str) -> Delivery[J] | None:
        # XAUTOCLAIM bumps the delivery count of what it claims; XPENDING reads it.
        reply = await self._redis.xautoclaim(
            self._stream, self._group, consumer, self._claim_idle_ms, start_id="0-0", count=1
        )
        entries = reply[1] if reply else []
        for entry_id, fields in entries:
            if fields is None:  # deleted from the stream while pending
                await self._redis.xack(self._stream, self._group, entry_id)
                continue
            job = self._decode(fields)
            entry = text(entry_id)
            pending = await self._redis.xpending_range(
                self._stream, self._group, min=entry, max=entry, count=1
            )
            deliveries = int(pending[0]["times_delivered"]) if pending else 1
            if deliveries > self.max_deliveries:
                await self._dead_letter(entry, job)
                return Delivery(entry, job, deliveries, dead=True)
            return Delivery(entry, job, deliveries)
        return None

    async def _dead_letter(self, entry_id: str, job: J) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.xadd(
                self._dead_stream,
                {"job": self.kind.encode(job), "entry_id": entry_id},
                maxlen=DEAD_LETTERS_KEPT,
                approximate=True,
            )
            pipe.xack(self._stream, self._group, entry_id)
            pipe.xdel(self._stream, entry_id)
            await pipe.execute()

    async def renew(self, consumer: str, delivery: Delivery[J]) -> bool:
        pending = await self._redis.xpending_range(
            self._stream, self._group, min=delivery.entry_id, max=delivery.entry_id, count=1
        )
        if not pending or text(pending[0]["consumer"]) != consumer:
            return False
        # NOTE: XCLAIM with JUSTID resets the idle time without counting a delivery.
        await self._redis.xclaim(
            self._stream, self._group, consumer, 0, [delivery.entry_id], justid=True
        )
        return True

    async def ack(self, delivery: Delivery[J]) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.xack(self._stream, self._group, delivery.entry_id)
            pipe.xdel(self._stream, delivery.entry_id)
            await pipe.execute()

    async def length(self) -> int:
        return int(await self._redis.xlen(self._stream))

    async def jobs(self) -> set[J]:
        # The stream holds only entries waiting or pending (acked ones are deleted)
        # and is bounded by max_queued: a paged scan is cheap.
        found: set[J] = set()
        start = "-"
        while True:
            entries: Any = await self._redis.xrange(self._stream, min=start, count=500)
            for _entry_id, fields in entries:
                found.add(self._decode(fields))
            if len(entries) < 500:
                return found
            start = "(" + text(entries[-1][0])

    async def forget_idle_consumers(self) -> int:
        await self.ensure_ready()
        forgotten = 0
        consumers: Any = await self._redis.xinfo_consumers(self._stream, self._group)
        for consumer in consumers:
            # NOTE: a consumer with no pending entry holds nothing to lose; one idle
            # for many claim periods is a dead process's (a live one reads at least
            # every poll interval). A live one dropped by mistake is re-created by
            # its next read.
            if int(consumer["pending"]) == 0 and int(consumer["idle"]) > 10 * self._claim_idle_ms:
                await self._redis.xgroup_delconsumer(
                    self._stream, self._group, text(consumer["name"])
                )
                forgotten += 1
        return forgotten

    def _decode(self, fields: dict[Any, Any]) -> J:
        return self.kind.decode(text(fields.get(b"job", fields.get("job"))))

    @contextlib.asynccontextmanager
    async def _unavailable_on_error(self) -> AsyncIterator[None]:
        """Redis transport failures on the API path as the kind's ``unavailable`` error."""
        try:
            yield
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise self.kind.unavailable(str(exc)) from exc

    async def dead_letters(self) -> list[J]:
        entries: Any = await self._redis.xrange(self._dead_stream)
        return [self._decode(fields) for _entry_id, fields in entries]
