"""The token buffer in Redis: a turn started on one API process resumes on another.

Each turn is a Redis Stream ``<prefix>turn:{<message id>}`` (XADD with an exact
MAXLEN, so it holds the newest ``max_events`` events) and a hash ``...:meta``
holding its tenant and, once a client asks, a cancel flag. Both expire ``ttl_s``
after the turn's last event. A follower reads with XREAD BLOCK and keeps a
``...:watch`` key alive, which tells the producer someone resumed the turn.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from app.chat.events import EventKind
from app.chat.resume.base import BufferedEvent, TokenBuffer, in_order, not_found, truncated
from app.core.errors import UnavailableError

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

    from redis.asyncio import Redis

_BLOCK_MS = 1000
"""How long one XREAD waits for new events before the follower checks on its turn."""
_WATCH_MS = 5000
"""Lifetime of a follower's watch mark; it renews it every ``_BLOCK_MS`` or sooner."""
_BATCH = 512


def _event(fields: Any) -> BufferedEvent:
    """An event from a stream entry's fields (bytes keys and values)."""
    kind = EventKind(fields[b"k"].decode())
    if kind is EventKind.TOKEN:
        return BufferedEvent(
            EventKind.TOKEN, {"index": int(fields[b"i"]), "text": fields[b"x"].decode()}
        )
    return BufferedEvent(kind, json.loads(fields[b"p"]))


class RedisTokenBuffer(TokenBuffer):
    """``TokenBuffer`` in Redis, shared by every API process of a deployment."""

    def __init__(
        self,
        redis: Redis,
        *,
        key_prefix: str = "ragserve:",
        ttl_s: float = 300.0,
        max_events: int = 4096,
    ) -> None:
        """Args:
        redis: A client (bytes responses); the caller owns and closes it.
        key_prefix: Prefix of every key.
        ttl_s: A turn's events expire this long after its last one.
        max_events: Events kept per turn (the newest).
        """
        self._redis = redis
        self._prefix = key_prefix
        self._ttl_ms = max(int(ttl_s * 1000), 1)
        self._max_events = max_events

    def _keys(self, message_id: str) -> tuple[str, str, str]:
        base = f"{self._prefix}turn:{{{message_id}}}"
        return base, f"{base}:meta", f"{base}:watch"

    async def open(self, message_id: str, tenant_id: str) -> None:
        _, meta, _ = self._keys(message_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(meta, "tenant", tenant_id)
            pipe.pexpire(meta, self._ttl_ms)
            await pipe.execute()

    async def _add(self, message_id: str, fields: dict[Any, Any]) -> bool:
        stream, meta, _ = self._keys(message_id)
        # NOTE: one round trip per event; the cancel flag rides along, so a cancel
        # sent to any process reaches the producer by its next token.
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.xadd(stream, fields, maxlen=self._max_events, approximate=False)
            pipe.pexpire(stream, self._ttl_ms)
            pipe.pexpire(meta, self._ttl_ms)
            pipe.hexists(meta, "cancel")
            results = await pipe.execute()
        return bool(results[-1])

    async def append(self, message_id: str, index: int, text: str) -> bool:
        return await self._add(message_id, {"k": EventKind.TOKEN, "i": index, "x": text})

    async def finish(self, message_id: str, kind: EventKind, payload: dict[str, Any]) -> None:
        await self._add(message_id, {"k": str(kind), "p": json.dumps(payload, default=str)})

    async def subscribe(
        self, message_id: str, tenant_id: str, after_index: int
    ) -> AsyncGenerator[BufferedEvent, None]:
        stream, meta, _ = self._keys(message_id)
        try:
            owner: Any = await self._redis.hget(meta, "tenant")
            first: Any = await self._redis.xrange(stream, count=1)
        except RedisError as exc:
            raise UnavailableError("Resuming is unavailable: Redis did not answer.") from exc
        if owner is None or owner.decode() != tenant_id:
            raise not_found(message_id)
        if first:
            event = _event(first[0][1])
            if event.type == EventKind.TOKEN and event.payload["index"] > after_index + 1:
                raise truncated(message_id, after_index)
        return in_order(message_id, after_index, self._follow(message_id))

    async def _follow(self, message_id: str) -> AsyncGenerator[BufferedEvent, None]:
        stream, meta, watch = self._keys(message_id)
        last_id: bytes | str = "0-0"
        watched_at = 0.0
        try:
            while True:
                if time.monotonic() - watched_at > _BLOCK_MS / 1000:
                    await self._redis.set(watch, b"1", px=_WATCH_MS)
                    watched_at = time.monotonic()
                found: Any = await self._redis.xread(
                    {stream: last_id}, count=_BATCH, block=_BLOCK_MS
                )
                if not found:
                    if not await self._redis.exists(meta):
                        yield BufferedEvent(EventKind.ERROR, not_found(message_id).to_payload())
                        return
                    continue
                for entry_id, fields in found[0][1]:
                    last_id = entry_id
                    event = _event(fields)
                    yield event
                    if event.terminal:
                        return
        except RedisError as exc:
            error = UnavailableError(f"Replay stopped: Redis did not answer ({exc}).")
            yield BufferedEvent(EventKind.ERROR, error.to_payload())

    async def text(self, message_id: str) -> str | None:
        stream, _, _ = self._keys(message_id)
        entries: Any = await self._redis.xrange(stream)
        if not entries:
            return None
        events = [_event(fields) for _, fields in entries]
        return "".join(e.payload["text"] for e in events if e.type == EventKind.TOKEN)

    async def request_cancel(self, message_id: str, tenant_id: str) -> bool:
        _, meta, _ = self._keys(message_id)
        owner: Any = await self._redis.hget(meta, "tenant")
        if owner is None or owner.decode() != tenant_id:
            return False
        await self._redis.hset(meta, "cancel", "1")
        return True

    async def followed(self, message_id: str) -> bool:
        return bool(await self._redis.exists(self._keys(message_id)[2]))
