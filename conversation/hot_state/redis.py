"""The hot conversation state in Redis, shared by every API process.

Each conversation is a hash ``<prefix>hot:{<tenant>:<id>}`` (its header, version,
writers in flight, their lease, whether the list is complete) and a list
``...:m`` of its newest messages as JSON. Each operation of ``HotState`` is one
Lua script, so the version checks described in ``conversation.hot_state.base``
are atomic across processes; the lease uses the Redis server's clock, so API
hosts' clocks may differ.

Redis is a cache here: when it is unreachable or slow, reads fall back to SQL and
writes go to SQL alone; no caller sees an error.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import structlog
from redis.exceptions import RedisError

from conversation.hot_state.base import CachedConversation, HotState, Lookup, PendingWrite
from conversation.types import ConversationInfo, MessageInfo

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from redis.asyncio import Redis

_log = structlog.get_logger(__name__)
_T = TypeVar("_T")

# NOTE: every script takes the TTL in ARGV[1] (``_TOUCH`` uses it).
_NOW = "local t = redis.call('TIME') local now = t[1] * 1000 + math.floor(t[2] / 1000) "
_TOUCH = "redis.call('PEXPIRE', KEYS[1], ARGV[1]) redis.call('PEXPIRE', KEYS[2], ARGV[1]) "

# KEYS: hash, list. ARGV: ttl_ms.
# Returns {hit, version, fillable[, info, complete, messages]}.
_LOOKUP = (
    _NOW
    + """
local f = redis.call('HMGET', KEYS[1], 'info', 'v', 'w', 'l', 'all')
local v = tonumber(f[2]) or 0
if (tonumber(f[3]) or 0) > 0 then
  if (tonumber(f[4]) or 0) > now then return {0, v, 0} end
  v = redis.call('HINCRBY', KEYS[1], 'v', 1)
  redis.call('HDEL', KEYS[1], 'info', 'all', 'w', 'l')
  redis.call('DEL', KEYS[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  return {0, v, 1}
end
if not f[1] then return {0, v, 1} end
"""
    + _TOUCH
    + """
return {1, v, 0, f[1], f[5] or '0', redis.call('LRANGE', KEYS[2], 0, -1)}
"""
)

# KEYS: hash, list. ARGV: ttl_ms, version, info, complete, messages...
_FILL = (
    """
local f = redis.call('HMGET', KEYS[1], 'v', 'w')
if (tonumber(f[1]) or 0) ~= tonumber(ARGV[2]) or (tonumber(f[2]) or 0) > 0 then return 0 end
redis.call('DEL', KEYS[2])
if #ARGV > 4 then redis.call('RPUSH', KEYS[2], unpack(ARGV, 5)) end
redis.call('HSET', KEYS[1], 'info', ARGV[3], 'all', ARGV[4], 'v', ARGV[2])
"""
    + _TOUCH
    + "return 1"
)

# KEYS: hash, list. ARGV: ttl_ms, lease_ms. Returns the write's version.
_BEGIN = (
    _NOW
    + """
local f = redis.call('HMGET', KEYS[1], 'w', 'l')
local w = tonumber(f[1]) or 0
if w > 0 and (tonumber(f[2]) or 0) <= now then
  w = 0
  redis.call('HDEL', KEYS[1], 'info', 'all')
  redis.call('DEL', KEYS[2])
end
redis.call('HSET', KEYS[1], 'w', w + 1, 'l', now + tonumber(ARGV[2]))
local v = redis.call('HINCRBY', KEYS[1], 'v', 1)
"""
    + _TOUCH
    + "return v"
)

# KEYS: hash, list. ARGV: ttl_ms, version, max_messages, info ('' drops), message ('' none).
_END = (
    """
local f = redis.call('HMGET', KEYS[1], 'v', 'w', 'info')
local w = math.max((tonumber(f[2]) or 0) - 1, 0)
if w == 0 then redis.call('HDEL', KEYS[1], 'w', 'l') else redis.call('HSET', KEYS[1], 'w', w) end
if ARGV[4] ~= '' and w == 0 and (tonumber(f[1]) or 0) == tonumber(ARGV[2]) and f[3] then
  redis.call('HSET', KEYS[1], 'info', ARGV[4])
  if ARGV[5] ~= '' then
    local n = redis.call('RPUSH', KEYS[2], ARGV[5])
    local keep = tonumber(ARGV[3])
    if n > keep then
      redis.call('LTRIM', KEYS[2], -keep, -1)
      redis.call('HSET', KEYS[1], 'all', '0')
    end
  end
else
  redis.call('HDEL', KEYS[1], 'info', 'all')
  redis.call('DEL', KEYS[2])
end
"""
    + _TOUCH
    + "return 1"
)

_FAILED = -1
"""The version of a write whose ``begin_write`` did not reach Redis."""


class RedisHotState(HotState):
    """``HotState`` in Redis (see the module docstring)."""

    def __init__(
        self,
        redis: Redis,
        *,
        key_prefix: str = "ragserve:",
        max_messages: int = 32,
        ttl_s: float = 900.0,
        write_lease_s: float = 10.0,
        timeout_s: float = 1.0,
    ) -> None:
        """Args:
        redis: A client (bytes responses); the caller owns and closes it.
        key_prefix: Prefix of every key.
        max_messages: Newest messages kept per conversation.
        ttl_s: An entry nobody reads or writes for this long expires.
        write_lease_s: How long a write may take between ``begin_write`` and
            ``end_write`` before readers assume its process died.
        timeout_s: Longest wait for Redis before falling back to SQL.
        """
        self.max_messages = max_messages
        self._redis = redis
        self._prefix = key_prefix
        self._ttl_ms = max(int(ttl_s * 1000), 1)
        self._lease_ms = max(int(write_lease_s * 1000), 1)
        self._timeout_s = timeout_s
        self._lookup = redis.register_script(_LOOKUP)
        self._fill = redis.register_script(_FILL)
        self._begin = redis.register_script(_BEGIN)
        self._end = redis.register_script(_END)
        self._suspects: set[tuple[str, str]] = set()

    def _keys(self, tenant_id: str, conversation_id: str) -> list[str]:
        # The braces are a hash tag: both keys land in one Redis Cluster slot.
        base = f"{self._prefix}hot:{{{tenant_id}:{conversation_id}}}"
        return [base, f"{base}:m"]

    async def _call(self, what: str, call: Awaitable[_T]) -> _T | None:
        """Run one Redis call; on any failure log it and return ``None``."""
        try:
            async with asyncio.timeout(self._timeout_s):
                return await call
        except (RedisError, OSError, TimeoutError) as exc:
            _log.warning("hot_state_call_failed", call=what, fallback="sql", error=repr(exc))
            return None

    async def _forget_suspects(self) -> None:
        """Drop the entries whose write could not be bracketed while Redis was away."""
        if not self._suspects:
            return
        suspects = list(self._suspects)
        keys = [key for s in suspects for key in self._keys(*s)]
        if await self._call("drop", self._redis.delete(*keys)) is not None:
            self._suspects.difference_update(suspects)

    async def lookup(self, tenant_id: str, conversation_id: str) -> Lookup:
        await self._forget_suspects()
        if (tenant_id, conversation_id) in self._suspects:
            return Lookup(None, 0, fillable=False)
        keys = self._keys(tenant_id, conversation_id)
        found: Any = await self._call("lookup", self._lookup(keys=keys, args=[self._ttl_ms]))
        if found is None:
            return Lookup(None, 0, fillable=False)
        version = int(found[1])
        if not int(found[0]):
            return Lookup(None, version, fillable=bool(int(found[2])))
        info = load_info(found[3])
        if info.tenant_id != tenant_id or info.id != conversation_id:
            return Lookup(None, version, fillable=False)  # never another tenant's entry
        messages = tuple(load_message(raw) for raw in found[5])
        return Lookup(CachedConversation(info, messages, found[4] == b"1"), version, False)

    async def fill(
        self, tenant_id: str, conversation_id: str, version: int, entry: CachedConversation
    ) -> None:
        kept = entry.messages[-self.max_messages :] if self.max_messages else ()
        complete = entry.complete and len(kept) == len(entry.messages)
        args: list[Any] = [self._ttl_ms, version, dump_info(entry.info), "1" if complete else "0"]
        args += [dump_message(m) for m in kept]
        keys = self._keys(tenant_id, conversation_id)
        await self._call("fill", self._fill(keys=keys, args=args))

    async def begin_write(self, tenant_id: str, conversation_id: str) -> int:
        await self._forget_suspects()
        keys = self._keys(tenant_id, conversation_id)
        version = await self._call(
            "begin_write", self._begin(keys=keys, args=[self._ttl_ms, self._lease_ms])
        )
        if version is None:
            # NOTE: the entry (if Redis still has one) is about to go stale and no
            # lease guards it; drop it as soon as Redis answers this process again.
            self._suspects.add((tenant_id, conversation_id))
            return _FAILED
        return int(version)

    async def end_write(
        self, tenant_id: str, conversation_id: str, version: int, write: PendingWrite | None
    ) -> None:
        if version == _FAILED:
            return
        info = dump_info(write.info) if write is not None and write.info is not None else ""
        message = dump_message(write.message) if write is not None and write.message else ""
        keys = self._keys(tenant_id, conversation_id)
        args: list[int | str] = [self._ttl_ms, version, self.max_messages, info, message]
        if await self._call("end_write", self._end(keys=keys, args=args)) is None:
            # The write's lease makes readers drop the entry once it runs out;
            # dropping it sooner (when Redis answers again) is only quicker.
            self._suspects.add((tenant_id, conversation_id))


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def dump_info(info: ConversationInfo) -> str:
    """A conversation header as JSON (as the Redis hot state stores it)."""
    return json.dumps({k: _jsonable(v) for k, v in asdict(info).items()}, separators=(",", ":"))


def load_info(raw: str | bytes) -> ConversationInfo:
    """A conversation header from :func:`dump_info`'s JSON."""
    data = json.loads(raw)
    data["created_at"] = datetime.fromisoformat(data["created_at"])
    data["updated_at"] = datetime.fromisoformat(data["updated_at"])
    return ConversationInfo(**data)


def dump_message(message: MessageInfo) -> str:
    """A message as JSON (as the Redis hot state stores it)."""
    data = {k: _jsonable(v) for k, v in asdict(message).items()}
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def load_message(raw: str | bytes) -> MessageInfo:
    """A message from :func:`dump_message`'s JSON."""
    data = json.loads(raw)
    data["created_at"] = datetime.fromisoformat(data["created_at"])
    return MessageInfo(**data)
