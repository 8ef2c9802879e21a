"""Database and Redis fixtures shared by every test suite (and nothing else).

- ``postgres_url``: a fresh, empty PostgreSQL database for the session.
- ``database_url``: a migrated database per test, once on SQLite, once on PostgreSQL.
- ``sessions``: an ``async_sessionmaker`` on ``database_url``.
- ``empty_database_url``: an unmigrated database per test, on both backends.
- ``redis_url``: a Redis server for the session (127.0.0.1:6379 when it answers,
  otherwise a throwaway ``redis-server`` started by pytest-redis).
- ``redis_prefix``: a key prefix private to one test, so tests (and several test
  runs on one server) never see each other's keys.

PostgreSQL is the server at 127.0.0.1:5432 when it answers, otherwise a throwaway
one started from the system binaries (``tests/support/postgres.py``). Tests never skip for
want of a server: they fail.

NOTE: each PostgreSQL test gets its own database, created from a template that was
migrated once per session (``CREATE DATABASE ... TEMPLATE``). That takes tens of
milliseconds, costs no migration per test, and unlike truncating shared tables it
stays correct when tests run in parallel or leave connections open.
"""

from __future__ import annotations

import shutil
import socket
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import psycopg
import pytest
from psycopg import sql
from pytest_redis import factories as redis_factories

from kernel.db import create_engine, session_factory
from kernel.migrations import upgrade
from tests.support.postgres import PgCluster

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator
    from pathlib import Path

    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

LOCAL_HOST = "127.0.0.1"
LOCAL_PORT = 5432
LOCAL_USER = "postgres"


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


@contextmanager
def _throwaway_server() -> Iterator[PgServer]:
    """A throwaway cluster from the system binaries (run as ``postgres`` when root)."""
    cluster = PgCluster()
    cluster.start()
    try:
        yield PgServer(LOCAL_HOST, cluster.port, cluster.user, "")
    finally:
        cluster.destroy()


@pytest.fixture(scope="session")
def _pg_server() -> Iterator[PgServer]:
    if _local_server_answers():
        yield PgServer(LOCAL_HOST, LOCAL_PORT, LOCAL_USER, "")
    else:
        with _throwaway_server() as server:
            yield server


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


REDIS_LOCAL_URL = "redis://127.0.0.1:6379/0"

# Started only when the local Redis does not answer (see redis_url).
redis_fallback_proc = redis_factories.redis_proc(port=None)


def _local_redis_answers() -> bool:
    try:
        with socket.create_connection((LOCAL_HOST, 6379), timeout=2) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture(scope="session")
def redis_url(request: pytest.FixtureRequest) -> str:
    """A URL of a running Redis server: the local one, or a throwaway one."""
    if _local_redis_answers():
        return REDIS_LOCAL_URL
    proc = request.getfixturevalue("redis_fallback_proc")
    return f"redis://{proc.host}:{proc.port}/0"


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix private to this test."""
    return f"ragserve-test:{uuid.uuid4().hex[:12]}:"
