"""kernel.orm: one metadata for every table, and UTC-aware timestamps on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy.exc import StatementError

import conversation.models  # noqa: F401 (registers its tables)
import safety.models  # noqa: F401 (registers its tables)
from kernel.db import create_engine, session_factory
from kernel.orm import Base
from retrieval.models import DocumentRow


def test_every_domain_registers_on_the_one_metadata() -> None:

    assert {"tenants", "documents", "safety_verdicts", "labeling_tasks"} <= set(
        Base.metadata.tables
    )


def _document(**fields: object) -> DocumentRow:
    return DocumentRow(
        tenant_id="t",
        collection="c",
        name="n",
        content_type="text/plain",
        content_hash="0" * 64,
        size_bytes=1,
        status="ready",
        **fields,
    )


async def test_timestamps_come_back_utc_aware(database_url: str) -> None:
    """Guards retrieval's rows, which SQLite used to hand back naive."""
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    created = datetime(2025, 3, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    try:
        async with sessions.begin() as session:
            row = _document(created_at=created)
            session.add(row)
        async with sessions() as session:
            stored = await session.get(DocumentRow, row.id)
        assert stored is not None
        assert stored.created_at == created
        assert stored.created_at.tzinfo == UTC
        assert stored.updated_at.tzinfo == UTC
    finally:
        await engine.dispose()


async def test_a_naive_timestamp_is_refused(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        with pytest.raises(StatementError, match="naive datetime"):
            async with session_factory(engine).begin() as session:
                session.add(_document(created_at=datetime(2025, 3, 1)))  # noqa: DTZ001 (the point)
    finally:
        await engine.dispose()
