"""Queued ingestion on migrated SQLite and PostgreSQL databases (migration 0005 included)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from sqlalchemy import func, select

from kernel.db import create_engine, session_factory
from retrieval.models import DocumentUploadRow
from retrieval.service import RetrievalService
from retrieval.types import DocumentStatus, IngestOutcome, Upload

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from retrieval.embedding import SentenceTransformerEmbedder
    from retrieval.vector_store import VectorStore

pytestmark = pytest.mark.model

TENANT = "44444444-4444-4444-4444-444444444444"


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on a migrated database, once SQLite, once PostgreSQL."""
    engine = create_engine(database_url)
    yield session_factory(engine)
    await engine.dispose()


async def _stored_uploads(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(DocumentUploadRow)) or 0)


async def test_uploads_are_stored_until_indexed_then_dropped(
    sessions: async_sessionmaker[AsyncSession],
    embedder: SentenceTransformerEmbedder,
    store: VectorStore,
) -> None:
    before = RetrievalService(sessions, embedder, store, ingest_workers=0)
    results = await before.submit_many(
        TENANT,
        [
            Upload("valves.md", b"# Valves\n\nClose the valve before changing the filter."),
            Upload("broken.pdf", b"%PDF-1.4 not really a PDF"),
        ],
    )
    assert [r.outcome for r in results] == [IngestOutcome.CREATED] * 2
    assert [r.document.status for r in results] == [DocumentStatus.QUEUED] * 2
    assert await _stored_uploads(sessions) == 2
    await before.stop_workers()

    # Another process (a restart with an in-process queue) picks the stored uploads up.
    after = RetrievalService(sessions, embedder, store)
    await after.start_workers()
    try:
        ids = [r.document.id for r in results]
        valves, broken = await after.wait_for(TENANT, ids, timeout_s=60)
        assert valves.status is DocumentStatus.READY
        assert valves.chunk_count == await store.count(TENANT, valves.id) == 1
        assert broken.status is DocumentStatus.FAILED
        assert "broken.pdf" in (broken.error or "")
        assert await _stored_uploads(sessions) == 0
        await after.delete_document(TENANT, valves.id)
        assert await store.count(TENANT, valves.id) == 0
        assert [doc.id for doc in (await after.list_documents(TENANT)).items] == [broken.id]
    finally:
        await after.stop_workers()
