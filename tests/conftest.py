"""Database fixtures shared by every test suite (and nothing else).

- ``postgres_url``: a fresh, empty PostgreSQL database for the session.
- ``database_url``: a migrated database per test, once on SQLite, once on PostgreSQL.
- ``sessions``: an ``async_sessionmaker`` on ``database_url``.
- ``empty_database_url``: an unmigrated database per test, on both backends.

PostgreSQL is the server at 127.0.0.1:5432 when it answers, otherwise a throwaway
one started by pytest-postgresql from the system binaries. Tests never skip for
want of a server: they fail.

NOTE: each PostgreSQL test gets its own database, created from a template that was
migrated once per session (``CREATE DATABASE ... TEMPLATE``). That takes tens of
milliseconds, costs no migration per test, and unlike truncating shared tables it
stays correct when tests run in parallel or leave connections open.
"""

from __future__ import annotations

import glob
import re
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from pytest_postgresql import factories
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from conversation.db import create_engine, session_factory
from conversation.migrations import upgrade

LOCAL_HOST = "127.0.0.1"
LOCAL_PORT = 5432
LOCAL_USER = "postgres"


def _newest_pg_ctl() -> str | None:
    """Returns the pg_ctl of the newest PostgreSQL installed from system packages."""

    def version(path: str) -> int:
        match = re.search(r"/postgresql/(\d+)/", path)
        return int(match.group(1)) if match else 0

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=version)
    return found[-1] if found else shutil.which("pg_ctl")


# Started only when the local server does not answer (see _pg_server).
postgresql_fallback_proc = factories.postgresql_proc(executable=_newest_pg_ctl(), port=None)


@dataclass(frozen=True)
class PgServer:
    host: str
    port: int
    user: str
    password: str

    def conninfo(self, dbname: str = "postgres") -> str:
        return psycopg.conninfo.make_conninfo(
            host=self.host, port=self.port, user=self.user, password=self.password, dbname=dbname
        )

    def url(self, dbname: str) -> str:
        auth = self.user if not self.password else f"{self.user}:{self.password}"
        return f"postgresql+asyncpg://{auth}@{self.host}:{self.port}/{dbname}"

    def create_database(self, name: str, template: str | None = None) -> None:
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            statement = sql.SQL("{} TEMPLATE {}").format(statement, sql.Identifier(template))
        with psycopg.connect(self.conninfo(), autocommit=True) as connection:
            connection.execute(statement)

    def drop_database(self, name: str) -> None:
        # FORCE ends sessions a failed test left open (PostgreSQL 13+).
        statement = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        with psycopg.connect(self.conninfo(), autocommit=True) as connection:
            connection.execute(statement)


def _local_server_answers() -> bool:
    try:
        with psycopg.connect(
            host=LOCAL_HOST, port=LOCAL_PORT, user=LOCAL_USER, dbname="postgres", connect_timeout=3
        ):
            return True
    except psycopg.OperationalError:
        return False


def _unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def _pg_server(request: pytest.FixtureRequest) -> PgServer:
    if _local_server_answers():
        return PgServer(LOCAL_HOST, LOCAL_PORT, LOCAL_USER, "")
    # NOTE: pg_ctl refuses to run as root; a root test run needs the local server.
    proc = request.getfixturevalue("postgresql_fallback_proc")
    return PgServer(proc.host, int(proc.port), proc.user, proc.password or "")


@pytest.fixture(scope="session")
def postgres_url(_pg_server: PgServer) -> Iterator[str]:
    """An asyncpg URL to a fresh, empty database, dropped when the session ends."""
    name = _unique_name("ragserve_test")
    _pg_server.create_database(name)
    yield _pg_server.url(name)
    _pg_server.drop_database(name)


@pytest.fixture(scope="session")
def _pg_template(_pg_server: PgServer) -> Iterator[str]:
    """The name of a database migrated to head, copied for each test."""
    name = _unique_name("ragserve_tpl")
    _pg_server.create_database(name)
    upgrade(_pg_server.url(name))
    yield name
    _pg_server.drop_database(name)


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head, copied for each test."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return path


BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL to a database migrated to head, private to this test, on each backend."""
    if request.param == "sqlite":
        path = tmp_path / "ragserve.db"
        shutil.copyfile(request.getfixturevalue("_sqlite_template"), path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    server: PgServer = request.getfixturevalue("_pg_server")
    name = _unique_name("ragserve_test")
    server.create_database(name, template=request.getfixturevalue("_pg_template"))
    yield server.url(name)
    server.drop_database(name)


@pytest.fixture(params=BACKENDS)
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL to an empty, unmigrated database private to this test, on each backend."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
        return
    server: PgServer = request.getfixturevalue("_pg_server")
    name = _unique_name("ragserve_test")
    server.create_database(name)
    yield server.url(name)
    server.drop_database(name)


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on ``database_url`` (the engine is disposed after the test)."""
    engine = create_engine(database_url)
    yield session_factory(engine)
    await engine.dispose()
