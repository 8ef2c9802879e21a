"""Queued ingestion on migrated SQLite and PostgreSQL databases (migration 0005 included)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import func, select

from kernel.db import create_engine, session_factory
from retrieval.errors import QuotaExceededError
from retrieval.leases import Taken, UploadLeases
from retrieval.models import DocumentUploadRow
from retrieval.service import RetrievalService
from retrieval.types import DocumentStatus, IngestionQuota, IngestJob, IngestOutcome, Upload

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from retrieval.embedding import SentenceTransformerEmbedder
    from retrieval.vector_store import VectorStore

pytestmark = pytest.mark.model

TENANT = "44444444-4444-4444-4444-444444444444"
OTHER = "45454545-4545-4545-4545-454545454545"


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


@pytest.mark.parametrize("store", ["edge"], indirect=True)
async def test_the_quota_refuses_uploads_past_it_and_stores_nothing_of_them(
    sessions: async_sessionmaker[AsyncSession],
    embedder: SentenceTransformerEmbedder,
    store: VectorStore,
) -> None:
    """Guards the per-tenant ingestion quota (documents and bytes): an upload past it
    is refused before anything of it is stored, a whole request at once; a tenant's
    own quota overrides the default; other tenants are not affected."""
    quota = IngestionQuota(max_bytes=100, max_documents=3)
    service = RetrievalService(sessions, embedder, store, ingest_workers=0, quota=quota)
    await service.submit_many(TENANT, [Upload("a.txt", b"a" * 40), Upload("b.txt", b"b" * 40)])
    with pytest.raises(QuotaExceededError, match="bytes"):
        await service.submit(TENANT, "c.txt", b"c" * 21)
    # A request that passes the quota only as a whole is refused whole.
    with pytest.raises(QuotaExceededError):
        await service.submit_many(TENANT, [Upload("c.txt", b"c"), Upload("d.txt", b"d")])
    # Replacing a document counts its new size only.
    await service.submit(TENANT, "a.txt", b"A" * 50)
    with pytest.raises(QuotaExceededError, match="documents"):
        await service.submit_many(TENANT, [Upload("c.txt", b"c"), Upload("d.txt", b"d")])
    names = sorted(doc.name for doc in (await service.list_documents(TENANT)).items)
    assert names == ["a.txt", "b.txt"]
    assert await _stored_uploads(sessions) == 2
    assert (await service.quota(TENANT))[1:] == (2, 90)

    await service.set_quota(TENANT, max_bytes=None, max_documents=10)
    assert (await service.quota(TENANT))[0] == IngestionQuota(max_bytes=100, max_documents=10)
    await service.submit_many(TENANT, [Upload("c.txt", b"c"), Upload("d.txt", b"d")])
    await service.submit(OTHER, "big.txt", b"x" * 100)


@pytest.mark.parametrize("store", ["edge"], indirect=True)
async def test_concurrent_uploads_cannot_pass_the_quota_together(
    sessions: async_sessionmaker[AsyncSession],
    embedder: SentenceTransformerEmbedder,
    store: VectorStore,
) -> None:
    """Guards the quota under concurrency: each upload is checked again in the
    transaction that stores it, serialised per tenant (an advisory lock on
    PostgreSQL), so ten at once against a quota of three store exactly three."""
    quota = IngestionQuota(max_bytes=10_000, max_documents=3)
    services = [
        RetrievalService(sessions, embedder, store, ingest_workers=0, quota=quota)
        for _ in range(10)
    ]
    outcomes = await asyncio.gather(
        *(s.submit(TENANT, f"n{i}.txt", b"note") for i, s in enumerate(services)),
        return_exceptions=True,
    )
    refused = [o for o in outcomes if isinstance(o, QuotaExceededError)]
    assert len(refused) == 7, outcomes
    assert len((await services[0].list_documents(TENANT)).items) == 3
    assert await _stored_uploads(sessions) == 3


@pytest.mark.parametrize("store", ["edge"], indirect=True)
async def test_start_indexing_counts_attempts_and_lets_one_taker_start(
    sessions: async_sessionmaker[AsyncSession],
    embedder: SentenceTransformerEmbedder,
    store: VectorStore,
) -> None:
    """Guards the SQL transition every worker goes through: of two takers at once one
    starts (the attempt counter is the guard, on SQLite and PostgreSQL); a fresh lease
    keeps others off; a stale one (its worker died) is taken with one more attempt;
    past the max it says so and changes nothing (the worker fails the document once
    its points are gone)."""
    service = RetrievalService(sessions, embedder, store, ingest_workers=0)
    document = (await service.submit(TENANT, "doc.txt", b"Pumps need filters.")).document
    job = IngestJob(TENANT, document.id, document.content_hash)
    documents = UploadLeases(sessions)
    fresh = datetime.now(UTC) - timedelta(seconds=60)
    takes = await asyncio.gather(
        *(documents.start_indexing(job, max_attempts=2, stale_before=fresh) for _ in range(2))
    )
    assert sorted(take.taken.value for take in takes) == ["busy", "started"]
    assert (await documents.start_indexing(job, max_attempts=2, stale_before=fresh)).taken is (
        Taken.BUSY
    )
    stale = datetime.now(UTC) + timedelta(seconds=1)
    again = await documents.start_indexing(job, max_attempts=2, stale_before=stale)
    assert (again.taken, again.attempts) == (Taken.STARTED, 2)
    assert again.upload is not None
    assert again.upload.data == b"Pumps need filters."
    last = await documents.start_indexing(job, max_attempts=2, stale_before=stale)
    assert (last.taken, last.attempts) == (Taken.EXHAUSTED, 3)
    # Nothing written: the worker drops the points first, then fails the document.
    pending = await service.get_document(TENANT, document.id)
    assert pending.status is DocumentStatus.INDEXING
    assert await _stored_uploads(sessions) == 1
    again = await documents.start_indexing(job, max_attempts=2, stale_before=stale)
    assert (again.taken, again.attempts) == (Taken.EXHAUSTED, 3)
