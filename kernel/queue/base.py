"""The work queue's interface, the values it hands out and what a queue carries.

Every implementation gives at-least-once delivery. A consumer ``receive``s an
entry, works on it and ``ack``s it when the work is final; an entry that is not
acked within ``claim_idle_s`` of its last delivery or lease renewal (the worker
died, was cancelled or its node crashed) goes to the next consumer that asks.
After ``max_deliveries`` deliveries an entry is dead-lettered instead: it is moved
aside and handed out once more marked ``dead``, so a worker can record why the job
failed. Handlers must therefore be idempotent.

Entries carry small jobs (ids and hashes), never the work's bytes; a ``JobKind``
says how one is written into an entry and read back, and which errors a full or
unreachable queue raises for its callers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

J = TypeVar("J", bound=Hashable)

DEFAULT_CLAIM_IDLE_S = 60.0
DEFAULT_MAX_DELIVERIES = 5
DEFAULT_MAX_QUEUED = 10_000
DEAD_LETTERS_KEPT = 10_000
"""Dead letters kept (the oldest go first)."""


@dataclass(frozen=True, slots=True)
class JobKind(Generic[J]):
    """What one queue carries.

    Attributes:
        encode: A job as an entry's text (a Redis stream field).
        decode: The job back from that text.
        full: The error ``put`` raises when ``max_queued`` entries wait (the argument).
        unavailable: The error raised when the queue cannot be reached (the detail).
    """

    encode: Callable[[J], str]
    decode: Callable[[str], J]
    full: Callable[[int], Exception]
    unavailable: Callable[[str], Exception]


@dataclass(frozen=True, slots=True)
class Delivery(Generic[J]):
    """One entry handed to a consumer.

    Attributes:
        entry_id: The queue's id of the entry (a stream id in Redis).
        job: What to do.
        deliveries: How many times the entry was handed out, this time included.
        dead: The entry exceeded ``max_deliveries`` and was dead-lettered; record
            the failure and do not process it (``ack`` is then a no-op).
    """

    entry_id: str
    job: J
    deliveries: int
    dead: bool = False


class WorkQueue(ABC, Generic[J]):
    """A bounded, at-least-once queue of jobs shared by the workers."""

    @property
    @abstractmethod
    def durable(self) -> bool:
        """Whether entries outlive this process (else the caller re-queues on start)."""

    @abstractmethod
    async def ensure_ready(self) -> None:
        """Create what the queue needs (a consumer group); idempotent."""

    @abstractmethod
    async def put(self, job: J) -> str:
        """Append a job; returns its entry id.

        Raises:
            Exception: the kind's ``full`` error when ``max_queued`` entries are
                waiting or in progress, its ``unavailable`` one when unreachable.
        """

    @abstractmethod
    async def has_room(self) -> bool:
        """Whether ``put`` would be accepted now (a hint; ``put`` decides)."""

    @abstractmethod
    async def receive(self, consumer: str, timeout_s: float) -> Delivery[J] | None:
        """The next entry for ``consumer``: a stuck one first, else a new one.

        Waits up to ``timeout_s`` for one; ``None`` when none came.
        """

    @abstractmethod
    async def renew(self, consumer: str, delivery: Delivery[J]) -> bool:
        """Reset the entry's idle time so nobody claims it while it is worked on.

        Returns:
            ``False`` when the entry is gone or another consumer holds it now.
        """

    @abstractmethod
    async def ack(self, delivery: Delivery[J]) -> None:
        """The entry is done: remove it for good."""

    @abstractmethod
    async def length(self) -> int:
        """Entries waiting or in progress (not yet acked)."""

    @abstractmethod
    async def jobs(self) -> set[J]:
        """The jobs of every entry waiting or in progress (to re-queue what is missing)."""

    async def forget_idle_consumers(self) -> int:
        """Drop consumers that hold nothing and were idle for long; how many.

        Every worker process names its consumers afresh, so a queue that keeps
        consumers (Redis) would otherwise list every dead process for ever.
        """
        return 0

    @abstractmethod
    async def dead_letters(self) -> list[J]:
        """Jobs that were given up on, oldest first (bounded)."""
