"""Token buckets: the interface, and the values an ``acquire`` takes and returns.

A bucket holds up to ``burst`` units and refills at ``rate`` units per second. One
``acquire`` looks at several buckets at once and is all-or-nothing: it takes
``cost`` from every bucket only when every bucket holds at least ``need``. A charge
with ``need=0`` always passes and may drive a bucket below zero, a debt the refill
pays back before the bucket lets anything through again (how generated tokens,
known only after a turn, are counted).

NOTE: hand-written rather than the ``limits`` library. ``limits`` 5.x offers fixed
window, moving window and sliding window counter strategies, none of which is a
token bucket: none refills continuously at a fractional rate (0.5/s), none can
charge a cost after the fact into debt, the moving window stores one Redis list
entry per unit of cost (100k entries for a token budget), and none reports the
time until a weighted cost fits. The Redis side is one Lua script (EVALSHA, one
round trip) that reads the clock with ``TIME``, so API nodes' clocks never matter.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "Bucket",
    "BucketsUnavailableError",
    "Decision",
    "TokenBuckets",
]


@dataclass(frozen=True, slots=True)
class Bucket:
    """One bucket of an ``acquire``: its name, shape, and what this call needs and takes."""

    name: str
    burst: float
    rate: float
    """Units refilled per second; must be positive."""
    need: float = 1.0
    """Level the bucket must hold for the call to pass."""
    cost: float = 1.0
    """Units taken when every bucket of the call passes."""


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of an ``acquire``: allowed or not, and every bucket's level after it."""

    allowed: bool
    levels: tuple[float, ...]

    def retry_after(self, buckets: Sequence[Bucket]) -> float:
        """Seconds until every bucket holds what it needs (0 when it already does)."""
        waits = [(b.need - level) / b.rate for b, level in zip(buckets, self.levels, strict=True)]
        return max([0.0, *waits])

    def blocking(self, buckets: Sequence[Bucket]) -> list[int]:
        """Indexes of the buckets that held less than they needed."""
        return [
            i for i, (b, lv) in enumerate(zip(buckets, self.levels, strict=True)) if lv < b.need
        ]


class BucketsUnavailableError(Exception):
    """The shared bucket store did not answer."""


class TokenBuckets(ABC):
    """Where buckets live: this process, or a Redis shared by every API node."""

    @abstractmethod
    async def acquire(self, buckets: Sequence[Bucket]) -> Decision:
        """Refill every bucket, then take each one's ``cost`` if all hold their ``need``.

        Raises:
            BucketsUnavailableError: The store did not answer.
        """

    @abstractmethod
    async def close(self) -> None:
        """Release what the store holds open."""
