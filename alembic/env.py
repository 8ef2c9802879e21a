"""Alembic environment: async engines, the one metadata of every table, batch mode on SQLite.

The URL is injected, never configured here: ``kernel.migrations`` passes it
as ``config.attributes["database_url"]`` (or an open connection as
``config.attributes["connection"]``); from the shell pass ``-x url=...`` or set
``sqlalchemy.url`` with ``alembic -c`` on a copy of alembic.ini.
"""

from __future__ import annotations

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection

# NOTE: imported for their side effect: each registers its tables on kernel.orm.Base.
import app.batches.tables
import app.console.tables
import app.idempotency
import app.routing.tables  # noqa: F401
import conversation.models  # noqa: F401
import retrieval.models  # noqa: F401
import safety.models  # noqa: F401
from kernel.migrations import migration_engine
from kernel.orm import Base

config = context.config

if config.config_file_name is not None:
    # NOTE: keep loggers configured by the caller (pytest, the app) alive.
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def _database_url() -> str:
    url = (
        config.attributes.get("database_url")
        or config.get_main_option("sqlalchemy.url")
        or context.get_x_argument(as_dictionary=True).get("url")
    )
    if not url:
        raise RuntimeError(
            "no database URL: use kernel.migrations.upgrade(url) "
            "or `alembic -x url=... upgrade head`"
        )
    return str(url)


def _configure(connection: Connection | None = None, url: str | None = None) -> None:
    dialect = connection.dialect.name if connection is not None else ""
    context.configure(
        connection=connection,
        url=url,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=dialect == "sqlite" or (url or "").startswith("sqlite"),
        compare_type=True,
        literal_binds=connection is None,
    )


def _run_with_connection(connection: Connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    engine = migration_engine(_database_url())
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run_with_connection)
            await connection.commit()
    finally:
        await engine.dispose()


def run_migrations_offline() -> None:
    """Writes the SQL to stdout instead of running it (``alembic upgrade --sql``)."""
    _configure(url=_database_url())
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Runs the migrations on the given connection, or on a new async engine."""
    connection = config.attributes.get("connection")
    if connection is None:
        asyncio.run(_run_async())
    elif isinstance(connection, Connection):
        _run_with_connection(connection)
    else:
        raise TypeError(
            "config.attributes['connection'] must be a sync Connection; from async "
            "code use AsyncConnection.run_sync (see kernel.migrations.upgrade_async)"
        )


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
