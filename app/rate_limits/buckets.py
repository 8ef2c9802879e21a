"""Token buckets: one interface, an in-process and a Redis implementation.

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

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

__all__ = [
    "Bucket",
    "BucketsUnavailableError",
    "Decision",
    "InProcessTokenBuckets",
    "RedisTokenBuckets",
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


def _refilled(level: float, since: float, now: float, bucket: Bucket) -> float:
    return min(bucket.burst, level + max(0.0, now - since) * bucket.rate)


class InProcessTokenBuckets(TokenBuckets):
    """Buckets in a dict of this process: correct for one API process only.

    There is no ``await`` between reading and writing a bucket, so an ``acquire`` is
    atomic on the event loop.
    """

    _PRUNE_AT = 50_000

    def __init__(self) -> None:
        self._state: dict[str, tuple[float, float]] = {}

    async def acquire(self, buckets: Sequence[Bucket]) -> Decision:
        now = time.monotonic()
        levels = []
        for b in buckets:
            state = self._state.get(b.name)
            levels.append(b.burst if state is None else _refilled(state[0], state[1], now, b))
        allowed = all(level >= b.need for b, level in zip(buckets, levels, strict=True))
        if allowed:
            for i, b in enumerate(buckets):
                if b.cost:
                    levels[i] -= b.cost
                    self._state[b.name] = (levels[i], now)
            if len(self._state) > self._PRUNE_AT:
                self._prune(now)
        return Decision(allowed, tuple(levels))

    async def close(self) -> None:
        self._state.clear()

    def _prune(self, now: float) -> None:
        """Forget buckets idle long enough to be surely full (a full bucket is no bucket).

        NOTE: the state does not remember each bucket's rate, so a bucket counts as
        full after a minute idle; at the smallest sane rate (1 per minute) that is
        still at least one unit, and a forgotten bucket starts full.
        """
        for name, (_, since) in list(self._state.items()):
            if now - since > 60:
                del self._state[name]


# KEYS: the buckets. ARGV: burst, rate, need, cost for each bucket, in KEYS order.
# Returns {allowed (0/1), level 1, level 2, ...} with levels as strings (Lua
# numbers returned to Redis are truncated to integers).
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local levels, allowed = {}, 1
for i = 1, #KEYS do
  local burst = tonumber(ARGV[4 * i - 3])
  local rate = tonumber(ARGV[4 * i - 2])
  local need = tonumber(ARGV[4 * i - 1])
  local state = redis.call('HMGET', KEYS[i], 'l', 't')
  local level = burst
  if state[1] then
    level = math.min(burst, tonumber(state[1]) + math.max(0, now - tonumber(state[2])) * rate)
  end
  levels[i] = level
  if level < need then allowed = 0 end
end
if allowed == 1 then
  for i = 1, #KEYS do
    local cost = tonumber(ARGV[4 * i])
    if cost ~= 0 then
      local burst = tonumber(ARGV[4 * i - 3])
      local rate = tonumber(ARGV[4 * i - 2])
      levels[i] = levels[i] - cost
      redis.call('HSET', KEYS[i], 'l', string.format('%.17g', levels[i]),
                 't', string.format('%.6f', now))
      redis.call('PEXPIRE', KEYS[i], math.ceil((burst - levels[i]) / rate * 1000) + 1000)
    end
  end
end
local out = {allowed}
for i = 1, #levels do out[i + 1] = string.format('%.17g', levels[i]) end
return out
"""


class RedisTokenBuckets(TokenBuckets):
    """Buckets in Redis, so every API node sharing the server enforces one budget.

    Each bucket is a hash ``{l: level, t: server time}`` that expires once it would
    be full again. Names should share a hash tag (``{tenant}``) so that the buckets
    of one call live in one Redis Cluster slot.
    """

    # NOTE: redis-py's asyncio pool refuses (MaxConnectionsError) rather than waits
    # once its 100 connections are in use; a refused check would let the request
    # through, so a flood of concurrent requests could slip past the limits. At most
    # this many checks are in flight per process; the rest queue here (one check
    # takes ~0.3 ms, so the queue drains fast).
    MAX_IN_FLIGHT = 32

    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix
        self._script = redis.register_script(_ACQUIRE)
        self._in_flight = asyncio.Semaphore(self.MAX_IN_FLIGHT)

    async def acquire(self, buckets: Sequence[Bucket]) -> Decision:
        keys = [self._prefix + b.name for b in buckets]
        args: list[float] = []
        for b in buckets:
            args += [b.burst, b.rate, b.need, b.cost]
        try:
            # redis-py's Script sends EVALSHA and falls back to EVAL once on NOSCRIPT.
            async with self._in_flight:
                reply = await self._script(keys=keys, args=args)
        except (RedisError, OSError) as exc:
            raise BucketsUnavailableError(f"Redis did not answer: {exc}") from exc
        return Decision(bool(int(reply[0])), tuple(float(level) for level in reply[1:]))

    async def close(self) -> None:
        """Nothing to release: the Redis client belongs to the services, which close it."""
