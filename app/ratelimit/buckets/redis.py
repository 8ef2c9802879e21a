"""Token buckets in Redis: one Lua script per ``acquire``, one round trip, Redis's clock."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from redis.exceptions import RedisError

from app.ratelimit.buckets.base import Bucket, BucketsUnavailableError, Decision, TokenBuckets

if TYPE_CHECKING:
    from collections.abc import Sequence

    from redis.asyncio import Redis

__all__ = ["RedisTokenBuckets"]

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
