"""Runs the repository's Alembic migrations from code (the CLI, tests, app start-up).

The migrations live in the top-level ``alembic/`` folder (valid on SQLite and
PostgreSQL) and cover every package's tables.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from kernel.db import async_url, ensure_sqlite_folder

if TYPE_CHECKING:
    from sqlalchemy import Connection

# NOTE: the package is installed editable, so the repository root (which holds
# alembic/) is the parent of this package's folder.
ALEMBIC_DIR = Path(__file__).resolve().parents[1] / "alembic"


def alembic_config(database_url: str | None = None) -> Config:
    """Returns an Alembic config pointing at the repository's migrations.

    Args:
        database_url: The database to migrate; None when a connection is passed
            through ``config.attributes["connection"]`` instead.
    """
    config = Config()
    config.set_main_option("script_location", str(ALEMBIC_DIR))
    if database_url is not None:
        # Passed as an attribute, not a main option: the ini parser would treat a
        # '%' in a URL-encoded password as interpolation.
        config.attributes["database_url"] = async_url(database_url)
    return config


def migration_engine(database_url: str) -> AsyncEngine:
    """Returns an engine fit for running migrations (alembic/env.py uses it too).

    NOTE: unlike ``kernel.db.create_engine``, SQLite connections here keep
    foreign keys off: Alembic's batch mode rebuilds a SQLite table by copying it
    and dropping the original, which with foreign keys on would cascade-delete
    the rows of every referring table.
    """
    url = async_url(database_url)
    ensure_sqlite_folder(url)
    return create_async_engine(url, poolclass=NullPool)


def upgrade(database_url: str, revision: str = "head") -> None:
    """Migrates a database up to ``revision``.

    It runs its own event loop (alembic/env.py calls ``asyncio.run``), so call it
    from synchronous code only: from inside a running event loop it raises
    ``RuntimeError``; await :func:`upgrade_async` there instead.

    Args:
        database_url: A SQLite or PostgreSQL URL (the async driver is added).
        revision: The target revision.
    """
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    """Migrates a database down to ``revision``; same caveat as :func:`upgrade`."""
    command.downgrade(alembic_config(database_url), revision)


async def upgrade_async(database_url: str, revision: str = "head") -> None:
    """Migrates a database up to ``revision`` from inside a running event loop."""
    await _run_async(database_url, revision, up=True)


async def downgrade_async(database_url: str, revision: str = "base") -> None:
    """Migrates a database down to ``revision`` from inside a running event loop."""
    await _run_async(database_url, revision, up=False)


async def _run_async(database_url: str, revision: str, *, up: bool) -> None:
    def _run(connection: Connection) -> None:
        # env.py sees the connection and uses it instead of starting a loop.
        config = alembic_config()
        config.attributes["connection"] = connection
        if up:
            command.upgrade(config, revision)
        else:
            command.downgrade(config, revision)

    engine = migration_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_run)
    finally:
        await engine.dispose()
