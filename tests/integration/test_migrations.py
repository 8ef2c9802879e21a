"""The Alembic migrations on SQLite and PostgreSQL: reversible, and equal to the models."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect

# NOTE: imported for their side effect: each registers its tables on kernel.orm.Base.
import app.idempotency
import app.routing.tables  # noqa: F401
import conversation.models  # noqa: F401
import retrieval.models  # noqa: F401
import safety.models  # noqa: F401
from kernel.db import create_engine
from kernel.migrations import downgrade_async, upgrade_async
from kernel.orm import Base

TABLES = {
    "tenants",
    "api_keys",
    "conversations",
    "messages",
    "feedback",
    "documents",
    "safety_verdicts",
    "labeling_tasks",
    "users",
    "document_uploads",
    "registered_models",
    "model_versions",
    "model_rollouts",
    "shadow_answers",
    "usage_records",
    "idempotency_keys",
}
METADATA = Base.metadata


async def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            names = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
    finally:
        await engine.dispose()
    return set(names) - {"alembic_version"}


async def test_upgrade_downgrade_upgrade(empty_database_url: str) -> None:
    await upgrade_async(empty_database_url)
    assert await _tables(empty_database_url) == TABLES

    await downgrade_async(empty_database_url, "base")
    assert await _tables(empty_database_url) == set()

    await upgrade_async(empty_database_url)
    assert await _tables(empty_database_url) == TABLES


async def test_migrated_schema_matches_the_models(empty_database_url: str) -> None:
    """Guards against a model change shipped without its migration."""
    await upgrade_async(empty_database_url)

    def diff(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, METADATA)

    engine = create_engine(empty_database_url)
    try:
        async with engine.connect() as connection:
            differences = await connection.run_sync(diff)
    finally:
        await engine.dispose()
    assert differences == []
