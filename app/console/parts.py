"""Opening the console's parts in the app's lifespan."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from litestar.stores.memory import MemoryStore
from litestar.stores.redis import RedisStore

from app.console.accounts import ConsoleAccounts
from app.console.login_throttle import LoginThrottle
from app.console.metrics_history import MetricsHistory
from app.console.sessions import SessionStore
from app.ratelimit.buckets import InProcessTokenBuckets, RedisTokenBuckets
from safety.audit import VerdictStore

if TYPE_CHECKING:
    from contextlib import AsyncExitStack

    from litestar.stores.base import Store
    from redis.asyncio import Redis
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from app.core.settings import Settings
    from app.ratelimit.buckets import TokenBuckets

__all__ = ["open_console"]


async def open_console(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    redis: Redis | None,
    stack: AsyncExitStack,
) -> dict[str, Any]:
    """The console's parts by name: ``console_accounts``, ``console_sessions``,
    ``login_throttle``, ``console_verdicts`` (the stored safety verdicts a task
    page shows) and ``metrics_history`` (sampling until ``stack`` closes).

    Sessions and sign-in budgets live in Redis when one is configured, so every API
    node shares them; in this process otherwise.
    """
    console = settings.console
    store: Store
    buckets: TokenBuckets
    if redis is None:
        store, buckets = MemoryStore(), InProcessTokenBuckets()
    else:
        prefix = settings.redis.key_prefix
        store = RedisStore(redis, namespace=f"{prefix}console-sessions")
        buckets = RedisTokenBuckets(redis, f"{prefix}console-login:")
    history = MetricsHistory(interval_s=console.metrics_interval_s)
    history.start()
    stack.push_async_callback(history.aclose)
    return {
        "console_accounts": ConsoleAccounts(sessions),
        "console_sessions": SessionStore(
            store, idle_s=console.session_idle_s, absolute_s=console.session_absolute_s
        ),
        "login_throttle": LoginThrottle(buckets, console),
        "console_verdicts": VerdictStore(sessions),
        "metrics_history": history,
    }
