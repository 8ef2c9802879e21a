"""The Alembic migrations on SQLite and PostgreSQL: reversible, and equal to the models."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect, text

# NOTE: imported for their side effect: each registers its tables on kernel.orm.Base.
import app.batches.tables
import app.console.tables
import app.idempotency
import app.routing.tables  # noqa: F401
import conversation.models  # noqa: F401
import retrieval.models  # noqa: F401
import safety.models  # noqa: F401
from app.chat.events import GENERATION_FAILED
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
    "labels",
    "label_skips",
    "console_users",
    "tenant_safety_policies",
    "users",
    "document_uploads",
    "registered_models",
    "model_versions",
    "model_rollouts",
    "shadow_answers",
    "usage_records",
    "idempotency_keys",
    "ingestion_quotas",
    "batch_files",
    "batches",
    "batch_results",
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


async def test_0009_adds_error_codes_and_quotas_and_keeps_documents(
    empty_database_url: str,
) -> None:
    """Guards migration 0009 on data: a document stored before it keeps its row both
    ways; the error code and the quota table come and go with the revision."""
    await upgrade_async(empty_database_url, "0008")
    engine = create_engine(empty_database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO documents (id, tenant_id, collection, name, content_type,"
                    " content_hash, size_bytes, chunk_count, status, error, created_at,"
                    " updated_at) VALUES ('d1', 't1', 'default', 'a.txt', 'text/plain', 'h',"
                    " 5, 0, 'failed', 'old text', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                )
            )
        await upgrade_async(empty_database_url, "0009")
        async with engine.begin() as connection:
            row = (await connection.execute(text("SELECT error, error_code FROM documents"))).one()
            assert tuple(row) == ("old text", None)
            await connection.execute(
                text("INSERT INTO ingestion_quotas VALUES ('t1', 10, 2, CURRENT_TIMESTAMP)")
            )
        await downgrade_async(empty_database_url, "0008")
        assert "ingestion_quotas" not in await _tables(empty_database_url)
        async with engine.connect() as connection:
            names = await connection.run_sync(
                lambda sync: [c["name"] for c in inspect(sync).get_columns("documents")]
            )
            assert "error_code" not in names
            assert (await connection.execute(text("SELECT id FROM documents"))).scalar() == "d1"
    finally:
        await engine.dispose()


async def test_0010_gives_failed_answers_a_code_and_a_safe_message(
    empty_database_url: str,
) -> None:
    """Guards migration 0010 on data: a failed answer stored with the engine's own
    text (an upstream's address) gets ``generation_failed`` and the fixed sentence;
    other messages keep theirs, both ways."""
    await upgrade_async(empty_database_url, "0009")
    engine = create_engine(empty_database_url)
    message = (
        "INSERT INTO messages (id, conversation_id, tenant_id, role, content, status,"
        " sources, citations, usage, timings, error, created_at) VALUES ('{id}', 'c1',"
        " 't1', 'assistant', 'partial', '{status}', '[]', '[]', '{{}}', '{{}}', '{error}',"
        " CURRENT_TIMESTAMP)"
    )
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO tenants (id, name, created_at)"
                    " VALUES ('t1', 't', CURRENT_TIMESTAMP)"
                )
            )
            await connection.execute(
                text(
                    "INSERT INTO conversations (id, tenant_id, created_at, updated_at)"
                    " VALUES ('c1', 't1', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                )
            )
            for id_, status, error in (
                ("m1", "failed", "ReadError: http://10.0.0.7:8001 went away"),
                ("m2", "cancelled", "client went away"),
            ):
                await connection.execute(text(message.format(id=id_, status=status, error=error)))
        await upgrade_async(empty_database_url, "0010")
        async with engine.connect() as connection:
            found = await connection.execute(text("SELECT id, error, error_code FROM messages"))
            rows = {id_: (error, code) for id_, error, code in found.all()}
        # The migration's sentence is the one the pipeline stores now.
        assert rows == {
            "m1": (GENERATION_FAILED, "generation_failed"),
            "m2": ("client went away", None),
        }
        await downgrade_async(empty_database_url, "0009")
        async with engine.connect() as connection:
            names = await connection.run_sync(
                lambda sync: [c["name"] for c in inspect(sync).get_columns("messages")]
            )
        assert "error_code" not in names
    finally:
        await engine.dispose()


async def test_0013_gives_old_tasks_a_priority_and_one_open_task_per_message(
    empty_database_url: str,
) -> None:
    """Guards migration 0013 on data: tasks stored before it get their source's
    priority and one label wanted, a repeated open (message, source) keeps only its
    oldest task open (the new unique index holds), and going back drops the tasks
    of sources 0002 did not know."""
    await upgrade_async(empty_database_url, "0012")
    engine = create_engine(empty_database_url)
    task = (
        "INSERT INTO labeling_tasks (id, tenant_id, message_id, source, reason, category,"
        " status, created_at) VALUES ('{id}', 't1', '{message}', '{source}', 'r', 'c',"
        " 'open', '{at}')"
    )
    try:
        async with engine.begin() as connection:
            for id_, message, source, at in (
                ("k1", "m1", "safety", "2026-01-01 00:00:00"),
                ("k2", "m1", "safety", "2026-01-02 00:00:00"),
                ("k3", "m1", "user_feedback", "2026-01-03 00:00:00"),
            ):
                await connection.execute(
                    text(task.format(id=id_, message=message, source=source, at=at))
                )
        await upgrade_async(empty_database_url, "0013")
        async with engine.begin() as connection:
            found = await connection.execute(
                text("SELECT id, status, priority, labels_wanted, labels_done FROM labeling_tasks")
            )
            rows = {row[0]: tuple(row[1:]) for row in found.all()}
            assert rows == {
                "k1": ("open", 90, 1, 0),
                "k2": ("done", 90, 1, 0),
                "k3": ("open", 70, 1, 0),
            }
            await connection.execute(
                text(task.format(id="k4", message="m2", source="withheld", at="2026-01-04"))
            )
        await downgrade_async(empty_database_url, "0012")
        async with engine.connect() as connection:
            ids = (await connection.execute(text("SELECT id FROM labeling_tasks"))).scalars()
            assert sorted(ids) == ["k1", "k2", "k3"]
        assert {"labels", "label_skips"}.isdisjoint(await _tables(empty_database_url))
    finally:
        await engine.dispose()
