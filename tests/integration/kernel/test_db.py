"""kernel.db: engine settings and the health check, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import text

from kernel.db import async_url, check_health, create_engine
from kernel.errors import DatabaseUnavailableError
from tests.support.postgres import PgCluster

if TYPE_CHECKING:
    from pathlib import Path


async def test_health_check_passes(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        await check_health(engine)
    finally:
        await engine.dispose()


async def test_health_check_reports_an_unreachable_database() -> None:
    engine = create_engine("postgresql://nobody@127.0.0.1:1/none")
    try:
        with pytest.raises(DatabaseUnavailableError):
            await check_health(engine, timeout_s=5)
    finally:
        await engine.dispose()


async def test_sqlite_connections_enforce_foreign_keys_in_wal_mode(tmp_path: Path) -> None:
    """Guards the cascade on delete, which SQLite ignores unless each connection opts in."""
    engine = create_engine(f"sqlite:///{tmp_path / 'nested' / 'folder' / 'x.db'}")
    try:
        async with engine.connect() as connection:
            foreign_keys = await connection.scalar(text("PRAGMA foreign_keys"))
            journal_mode = await connection.scalar(text("PRAGMA journal_mode"))
            busy_timeout = await connection.scalar(text("PRAGMA busy_timeout"))
    finally:
        await engine.dispose()
    assert (foreign_keys, journal_mode) == (1, "wal")
    assert busy_timeout > 0
    assert (tmp_path / "nested" / "folder" / "x.db").exists()


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sqlite:///data/x.db", "sqlite+aiosqlite:///data/x.db"),
        ("postgres://u:p@h/db", "postgresql+asyncpg://u:p@h/db"),
        ("postgresql://u@h:5433/db", "postgresql+asyncpg://u@h:5433/db"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg://u@h/db"),
    ],
)
def test_async_url(given: str, expected: str) -> None:
    assert async_url(given) == expected


async def test_a_new_connection_waits_for_a_postgres_that_is_starting() -> None:
    """A restart refuses connections for a moment: the engine retries the connect
    (``PG_CONNECT_DELAYS_S``) instead of failing the request at once."""
    cluster = PgCluster()
    engine = create_engine(f"postgresql://{cluster.user}@127.0.0.1:{cluster.port}/postgres")
    try:

        async def query() -> int:
            async with engine.connect() as connection:
                return int((await connection.execute(text("SELECT 1"))).scalar_one())

        pending = asyncio.create_task(query())
        await asyncio.sleep(0.3)  # the first attempts are refused
        assert not pending.done()
        await asyncio.to_thread(cluster.start)
        assert await asyncio.wait_for(pending, 10) == 1
    finally:
        await engine.dispose()
        cluster.destroy()
