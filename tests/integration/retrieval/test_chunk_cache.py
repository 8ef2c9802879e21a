"""The node-local chunk cache in front of Qdrant, real MiniLM: hits, prefetch, invalidation.

The invariant under test: no stale or deleted chunk is ever returned once the
change that removed it has returned.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest

from retrieval.search import CacheConfig
from retrieval.service import RetrievalService

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from sqlalchemy.ext.asyncio import async_sessionmaker

    from retrieval.embedding import SentenceTransformerEmbedder
    from retrieval.vector_store import VectorStore

pytestmark = pytest.mark.model

TENANT = "11111111-1111-1111-1111-111111111111"
OTHER = "22222222-2222-2222-2222-222222222222"

REFUNDS_V1 = "Refund policy: unused products can be returned within 30 days for a full refund."
REFUNDS_V2 = "Refund policy: unused products can be returned within 14 days for store credit."
TOPICS = [
    "Orders placed before 2 pm ship the same day; express delivery arrives the next day.",
    "Reset your password from the sign-in page; the e-mailed link expires after one hour.",
    "Gift cards, personalised items and perishable groceries cannot be refunded.",
    "Our support line is open Monday to Friday from 9 am to 6 pm.",
]


@pytest.fixture
async def cached(
    sessions: async_sessionmaker, embedder: SentenceTransformerEmbedder, store: VectorStore
) -> AsyncIterator[RetrievalService]:
    service = RetrievalService(
        sessions, embedder, store, cache=CacheConfig(device="cpu", similarity_threshold=0.8)
    )
    for i, text in enumerate(TOPICS):
        await service.ingest(TENANT, f"topic{i}.txt", text.encode(), "text/plain")
    yield service
    await service.close()


async def test_a_similar_query_is_a_hit_with_the_stores_exact_answer(
    cached: RetrievalService,
) -> None:
    first = await cached.search(TENANT, "When will my order be delivered?", k=2, mode="dense")
    again = await cached.search(TENANT, "When will my order be delivered ?", k=2, mode="dense")
    direct = await cached.search(
        TENANT, "When will my order be delivered ?", k=2, mode="dense", use_cache=False
    )
    stats = cached.cache_stats()
    assert (stats.hits, stats.misses) == (1, 1)
    assert [h.chunk_id for h in again] == [h.chunk_id for h in direct]
    assert [h.score for h in again] == pytest.approx([h.score for h in direct], abs=1e-5)
    assert first[0].document_name == "topic0.txt"
    # Hybrid hits rank by RRF over the candidates; the best chunk stays the store's.
    await cached.search(TENANT, "express delivery next day", k=2)
    hybrid = await cached.search(TENANT, "express delivery next day!", k=2)
    assert cached.cache_stats().hits == 2
    assert hybrid[0].document_name == "topic0.txt"
    # A cached chunk's similarity is to the new query, not to the one that cached it.
    store = await cached.search(TENANT, "express delivery next day!", k=2, use_cache=False)
    assert hybrid[0].similarity == pytest.approx(store[0].similarity, abs=1e-5)
    # No other tenant is ever served from this tenant's entries.
    assert await cached.search(OTHER, "When will my order be delivered?", k=2) == []


async def test_prefetch_warms_the_cache_off_the_request_path(cached: RetrievalService) -> None:
    assert await cached.prefetch(TENANT, None, "How do I reset my password?", mode="dense")
    await cached.settle_prefetches()
    assert cached.cache_stats().prefetches == 1
    hits = await cached.search(TENANT, "How can I reset my password?", k=1, mode="dense")
    assert cached.cache_stats().hits == 1
    assert hits[0].document_name == "topic1.txt"
    assert not await cached.prefetch(TENANT, None, "   ")


async def test_a_deleted_document_is_never_served_from_the_cache(
    cached: RetrievalService,
) -> None:
    result = await cached.ingest(TENANT, "refunds.txt", REFUNDS_V1.encode(), "text/plain")
    query = "Can I get a refund for an unused product?"
    warm = await cached.search(TENANT, query, k=3)
    assert warm[0].document_name == "refunds.txt"
    await cached.delete_document(TENANT, result.document.id)
    for variant in (query, query + " ", "Can I get a refund for unused products?"):
        hits = await cached.search(TENANT, variant, k=3)
        assert all(h.document_id != result.document.id for h in hits)
    assert cached.cache_stats().invalidations >= 1


async def test_a_replaced_document_serves_only_its_new_text(cached: RetrievalService) -> None:
    await cached.ingest(TENANT, "refunds.txt", REFUNDS_V1.encode(), "text/plain")
    query = "How many days do I have to return an unused product?"
    assert "30 days" in (await cached.search(TENANT, query, k=1))[0].text
    await cached.ingest(TENANT, "refunds.txt", REFUNDS_V2.encode(), "text/plain")
    for variant in (query, query + "?"):
        texts = [h.text for h in await cached.search(TENANT, variant, k=5)]
        assert any("14 days" in t for t in texts)
        assert not any("30 days" in t for t in texts)


async def test_searches_racing_a_delete_never_bring_the_chunks_back(
    cached: RetrievalService,
) -> None:
    """Guards the generation check: answers fetched before the delete must not be
    admitted after it, or later hits would resurrect the deleted chunk."""
    result = await cached.ingest(TENANT, "refunds.txt", REFUNDS_V1.encode(), "text/plain")
    query = "refund for an unused product within 30 days"

    async def searcher() -> None:
        for _ in range(6):
            await cached.search(TENANT, query, k=3)

    racing = [asyncio.create_task(searcher()) for _ in range(3)]
    await asyncio.sleep(0)
    await cached.delete_document(TENANT, result.document.id)
    await asyncio.gather(*racing)
    for _ in range(3):
        hits = await cached.search(TENANT, query, k=3)
        assert all(h.document_id != result.document.id for h in hits)


async def test_the_cache_can_be_switched_off(
    sessions: async_sessionmaker, embedder: SentenceTransformerEmbedder, store: VectorStore
) -> None:
    service = RetrievalService(sessions, embedder, store, cache=None)
    await service.ingest(TENANT, "topic.txt", TOPICS[0].encode(), "text/plain")
    for _ in range(2):
        assert await service.search(TENANT, "express delivery", k=1)
    assert not await service.prefetch(TENANT, None, "express delivery")
    stats = service.cache_stats()
    assert (stats.hits, stats.misses, stats.entries) == (0, 0, 0)
    await service.close()


async def test_a_new_rare_word_goes_to_the_store_and_clear_cache_empties(
    cached: RetrievalService,
) -> None:
    """A hybrid hit is refused when the new query adds a word no held chunk contains
    (the store's sparse leg could rank other chunks first); ``clear_cache`` forgets."""
    await cached.search(TENANT, "express delivery next day", k=2)
    assert (await cached.search(TENANT, "express delivery the next day", k=2))[0].document_name
    assert cached.cache_stats().hits == 1  # "the" is in held chunks
    query = "express delivery next day parrots"
    hits = await cached.search(TENANT, query, k=2)
    assert cached.cache_stats().hits == 1  # "parrots" is in none: a miss
    direct = await cached.search(TENANT, query, k=2, use_cache=False)
    assert [h.chunk_id for h in hits] == [h.chunk_id for h in direct]
    cached.clear_cache(TENANT)
    assert cached.cache_stats().entries == 0
    await cached.search(TENANT, "express delivery next day", k=2)
    assert cached.cache_stats().hits == 1  # asked the store again
    cached.clear_cache()
    assert cached.cache_stats().queries == 0
