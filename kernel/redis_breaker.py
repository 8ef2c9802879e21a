"""A circuit breaker in front of Redis, so a hung server costs one timeout, not one a call.

A stopped (not dead) Redis accepts connections and never answers: every call waits
for the client's read timeout. Each caller already degrades on a Redis error (rate
limits fall back to this process, hot state to SQL, resume is off), but paying the
timeout on every request, and on every token of a running turn, is an outage of its
own. ``open_redis`` builds a client whose connections report transport failures to
a ``RedisBreaker``: after one, every call fails at once with ``ConnectionError``
for ``cooldown_s``; then the next call tries Redis again (and trips it again if
Redis still does not answer).

Only transport failures count (timeouts, refused or reset connections); an error
reply from Redis means it is alive.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import structlog
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

if TYPE_CHECKING:
    from collections.abc import Callable

log = structlog.get_logger(__name__)

_TRANSPORT_FAILURES = (RedisConnectionError, RedisTimeoutError, OSError, asyncio.TimeoutError)


class RedisBreaker:
    """Open for ``cooldown_s`` after a transport failure; closed otherwise."""

    def __init__(self, cooldown_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._cooldown_s = cooldown_s
        self._clock = clock
        self._open_until = 0.0
        self.trips = 0

    @property
    def is_open(self) -> bool:
        return self._clock() < self._open_until

    def check(self) -> None:
        """Raise ``ConnectionError`` while open, without touching the network."""
        if self.is_open:
            raise RedisConnectionError(
                f"Redis is not tried for {self._cooldown_s:g} s after a failure"
            )

    def trip(self, exc: BaseException) -> None:
        if self._cooldown_s <= 0:
            return
        if not self.is_open:
            self.trips += 1
            log.warning("redis_breaker_open", cooldown_s=self._cooldown_s, error=repr(exc))
        self._open_until = self._clock() + self._cooldown_s


class _GuardedConnection(AbstractConnection):
    """Mixed into the pool's own connection class (TCP, TLS or Unix socket): it
    consults and feeds the pool's breaker."""

    breaker: RedisBreaker

    async def connect(self) -> None:
        self.breaker.check()
        try:
            await super().connect()  # type: ignore[no-untyped-call]  # redis-py untyped
        except _TRANSPORT_FAILURES as exc:
            self.breaker.trip(exc)
            raise

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        self.breaker.check()
        try:
            await super().send_packed_command(command, check_health)
        except _TRANSPORT_FAILURES as exc:
            self.breaker.trip(exc)
            raise

    async def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().read_response(*args, **kwargs)
        except _TRANSPORT_FAILURES as exc:
            self.breaker.trip(exc)
            raise


class _GuardedPool(BlockingConnectionPool):
    """A blocking pool that does not wait for a connection while the breaker is open
    (with Redis hung, every pooled connection may be stuck in a read)."""

    breaker: RedisBreaker

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        self.breaker.check()
        return await super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]


def open_redis(
    url: str,
    *,
    max_connections: int,
    pool_timeout_s: float,
    connect_timeout_s: float,
    read_timeout_s: float,
    cooldown_s: float,
) -> tuple[Redis, RedisBreaker]:
    """A client of ``url`` (it connects on first use) behind a new breaker."""
    breaker = RedisBreaker(cooldown_s)
    pool_class: type[_GuardedPool] = type("BreakerPool", (_GuardedPool,), {"breaker": breaker})
    # NOTE: a blocking pool makes a burst of requests wait for a connection rather
    # than fail (redis-py's default pool raises past its size, which would let rate
    # limit checks through under exactly the flood they exist for).
    pool = pool_class.from_url(
        url,
        max_connections=max_connections,
        timeout=pool_timeout_s,
        health_check_interval=30,
        # NOTE: without these a stopped (not dead) Redis hangs every caller for as
        # long as the kernel keeps the socket. The read timeout stays above the
        # longest blocking read made on purpose (XREAD/XREADGROUP BLOCK, 1 s).
        socket_connect_timeout=connect_timeout_s,
        socket_timeout=read_timeout_s,
    )
    # The URL's scheme chose the connection class; the breaker is mixed into it
    # before the first connection exists.
    pool.connection_class = type(
        "BreakerConnection", (_GuardedConnection, pool.connection_class), {"breaker": breaker}
    )
    return Redis(connection_pool=pool), breaker
