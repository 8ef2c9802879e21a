"""Engine and session construction for the SQL database every domain package shares.

The same code serves the embedded default (a SQLite file through aiosqlite) and the
scaled deployment (PostgreSQL through asyncpg); only the URL differs.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as _create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool

from kernel.errors import DatabaseUnavailableError

if TYPE_CHECKING:
    from sqlalchemy.engine.interfaces import DBAPIConnection

SQLITE_BUSY_TIMEOUT_MS = 30_000
"""How long a SQLite writer waits for the write lock before failing."""

PG_CONNECT_TIMEOUT_S = 5.0
"""How long one PostgreSQL connection attempt may take (asyncpg's default is 60 s)."""

PG_CONNECT_DELAYS_S = (0.25, 0.5, 1.0, 1.5)
"""Waits between attempts at a new PostgreSQL connection: a restarting server (refused
connections, then "the database system is starting up") is bridged for about 3 s
before a request gets its 503."""


def async_url(url: str) -> str:
    """Returns ``url`` with the async driver the services use.

    ``sqlite:///x.db`` becomes ``sqlite+aiosqlite:///x.db`` and ``postgresql://...``
    (or ``postgres://``) becomes ``postgresql+asyncpg://...``; URLs that already
    name a driver are returned unchanged.

    Args:
        url: A SQLAlchemy database URL.

    Returns:
        The URL as a string, with an async driver.
    """
    parsed = make_url(url)
    driver_by_backend = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}
    backend = "postgresql" if parsed.drivername == "postgres" else parsed.drivername
    if backend in driver_by_backend:
        parsed = parsed.set(drivername=driver_by_backend[backend])
    return parsed.render_as_string(hide_password=False)


def ensure_sqlite_folder(url: str) -> None:
    """Creates the parent folder of a SQLite database file; no-op for other URLs.

    Args:
        url: A SQLAlchemy database URL.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return
    Path(database).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)


def _is_memory_sqlite(url: str) -> bool:
    parsed = make_url(url)
    return parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:")


def _on_sqlite_connect(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # NOTE: SQLite ignores foreign keys (and so ON DELETE CASCADE) unless every
        # connection asks for them; deleting a conversation relies on the cascade.
        cursor.execute("PRAGMA foreign_keys=ON")
        # WAL lets readers run while one writer commits; the busy timeout makes a
        # second writer wait for the lock instead of failing at once.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


async def _connect_pg(*args: Any, **kwargs: Any) -> Any:
    """``asyncpg.connect`` again after a refused or not-yet-ready server, a few times."""
    import asyncpg

    kwargs.setdefault("timeout", PG_CONNECT_TIMEOUT_S)
    for delay in (*PG_CONNECT_DELAYS_S, None):
        try:
            return await asyncpg.connect(*args, **kwargs)
        except (
            OSError,
            TimeoutError,
            asyncpg.CannotConnectNowError,
            asyncpg.TooManyConnectionsError,
        ) as exc:
            if delay is None:
                # A domain error (503 database_unavailable), not the socket's own.
                raise DatabaseUnavailableError(f"cannot connect: {exc!r}") from exc
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def create_engine(url: str, echo: bool = False) -> AsyncEngine:
    """Creates the async engine for ``url`` (SQLite or PostgreSQL).

    SQLite connections get foreign keys, WAL and a busy timeout; the parent folder
    of a SQLite file is created. Nothing connects until the engine is first used.

    Args:
        url: A SQLAlchemy URL; a driver-less ``sqlite://`` or ``postgresql://`` URL
            is given its async driver.
        echo: Log every SQL statement.

    Returns:
        The engine; dispose of it on shutdown.
    """
    url = async_url(url)
    kwargs: dict[str, Any] = {"echo": echo}
    is_sqlite = make_url(url).get_backend_name() == "sqlite"
    if is_sqlite:
        ensure_sqlite_folder(url)
        kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        if _is_memory_sqlite(url):
            # NOTE: every new connection to ":memory:" is a new, empty database; one
            # shared connection keeps the data visible to every session.
            kwargs["poolclass"] = StaticPool
    else:
        # A connection the server dropped (a restart) is replaced at checkout; a new
        # one is retried while the server comes back (``_connect_pg``).
        kwargs["pool_pre_ping"] = True
        kwargs["connect_args"] = {"async_creator_fn": _connect_pg}
    engine = _create_async_engine(url, **kwargs)
    if is_sqlite:
        event.listen(engine.sync_engine, "connect", _on_sqlite_connect)
    return engine


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Returns the session factory the services take.

    Args:
        engine: The engine from :func:`create_engine`.

    Returns:
        A factory of sessions whose objects stay readable after commit.
    """
    # NOTE: expire_on_commit=False because services read a row's columns after
    # committing it, and an expired attribute would need a lazy load, which async
    # sessions cannot do implicitly.
    return async_sessionmaker(engine, expire_on_commit=False)


async def check_health(engine: AsyncEngine, timeout_s: float = 2.0) -> None:
    """Checks that the database answers a trivial query.

    Args:
        engine: The engine to check.
        timeout_s: How long to wait for the answer.

    Raises:
        DatabaseUnavailableError: The database did not answer in time, or failed.
    """

    async def _ping() -> None:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    try:
        await asyncio.wait_for(_ping(), timeout_s)
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        raise DatabaseUnavailableError(f"database unavailable: {type(exc).__name__}") from exc


async def lock_key(session: AsyncSession, key: str) -> None:
    """Serialise the transactions that lock ``key`` until this one ends.

    For check-then-insert steps (a quota): two READ COMMITTED transactions of
    PostgreSQL would each miss the other's row and both pass, so PostgreSQL takes a
    transaction-scoped advisory lock; SQLite serialises writers already.
    """
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": key})
