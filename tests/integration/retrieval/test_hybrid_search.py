"""Dense, sparse and hybrid search through Qdrant's query API on each engine, real MiniLM."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import numpy as np
import pytest
from qdrant_client import models

from retrieval.errors import InvalidRequestError, RetrievalError
from retrieval.query_embedder import QueryEmbedder
from retrieval.service import RetrievalService
from retrieval.vector_store import QdrantVectorStore

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from sqlalchemy.ext.asyncio import async_sessionmaker

    from retrieval.embedding import SentenceTransformerEmbedder
    from retrieval.vector_store import VectorStore

pytestmark = pytest.mark.model

TENANT_A = "11111111-1111-1111-1111-111111111111"
TENANT_B = "22222222-2222-2222-2222-222222222222"

DOCS = {
    "refunds.txt": "Customers can return any unused product within 30 days of delivery for a "
    "full refund. Refunds are paid to the original payment method.",
    "shipping.txt": "Orders placed before 2 pm ship the same day. Express delivery arrives the "
    "next day. Shipping is free above 50 euros.",
    "errors.txt": "If the terminal shows error code ZX-4471, restart the card reader and "
    "unplug its cable for ten seconds.",
    "passwords.txt": "Open the sign-in page and click Forgot password; we e-mail you a link "
    "that expires after one hour.",
}


@pytest.fixture
async def hybrid(
    sessions: async_sessionmaker, embedder: SentenceTransformerEmbedder, store: VectorStore
) -> AsyncIterator[RetrievalService]:
    """A service without the chunk cache, so every answer is Qdrant's own."""
    service = RetrievalService(sessions, embedder, store, cache=None)
    for tenant in (TENANT_A, TENANT_B):
        for name, text in DOCS.items():
            collection = "support" if name != "passwords.txt" else "accounts"
            await service.ingest(tenant, name, text.encode(), "text/plain", collection)
    yield service
    await service.close()


async def test_sparse_and_hybrid_find_an_exact_code_dense_ranks_low(
    hybrid: RetrievalService,
) -> None:
    """The reason for hybrid: a rare token (an error code) is BM25's strength."""
    sparse = await hybrid.search(TENANT_A, "ZX-4471", k=1, mode="sparse")
    assert [h.document_name for h in sparse] == ["errors.txt"]
    assert sparse[0].score > 0
    fused = await hybrid.search(TENANT_A, "ZX-4471", k=2, mode="hybrid")
    assert fused[0].document_name == "errors.txt"
    dbsf = await hybrid.search(TENANT_A, "ZX-4471", k=2, mode="hybrid", fusion="dbsf")
    assert dbsf[0].document_name == "errors.txt"


@pytest.mark.parametrize("mode", ["dense", "sparse", "hybrid"])
async def test_every_mode_filters_tenant_and_collection(
    hybrid: RetrievalService, mode: str
) -> None:
    hits = await hybrid.search(TENANT_A, "refund delivery password", k=10, mode=mode)
    names = {h.document_name for h in hits}
    assert "refunds.txt" in names
    owned = {h.chunk_id for h in await hybrid.search(TENANT_B, "refund", k=10, mode=mode)}
    assert owned.isdisjoint(h.chunk_id for h in hits)  # same texts, other tenant's points
    scoped = await hybrid.search(TENANT_A, "password link", k=10, collection="support", mode=mode)
    assert all(h.collection == "support" for h in scoped)


async def test_hybrid_floor_holds_each_chunk_to_its_dense_cosine(
    hybrid: RetrievalService,
) -> None:
    query = "When does my parcel arrive?"
    everything = await hybrid.search(TENANT_A, query, k=4, mode="hybrid")
    store_dense = {h.chunk_id: h.score for h in await hybrid.search(TENANT_A, query, k=4,
                                                                     mode="dense")}  # fmt: skip
    floor = 0.3
    kept = await hybrid.search(TENANT_A, query, k=4, mode="hybrid", score_floor=floor)
    assert kept
    assert {h.chunk_id for h in kept} == {
        h.chunk_id for h in everything if store_dense.get(h.chunk_id, -1.0) >= floor
    }
    # A hybrid hit's score is a fused rank; its similarity is the dense cosine.
    shared = [h for h in everything if h.chunk_id in store_dense]
    assert shared
    assert [h.similarity for h in shared] == pytest.approx(
        [store_dense[h.chunk_id] for h in shared], abs=1e-5
    )


async def test_a_query_without_words_is_answered_not_refused(hybrid: RetrievalService) -> None:
    assert await hybrid.search(TENANT_A, "?!", k=3, mode="sparse") == []
    assert len(await hybrid.search(TENANT_A, "?!", k=3, mode="hybrid")) == 3


async def test_bad_mode_or_fusion_is_a_clear_error(hybrid: RetrievalService) -> None:
    with pytest.raises(InvalidRequestError, match="mode"):
        await hybrid.search(TENANT_A, "refund", mode="fuzzy")
    with pytest.raises(InvalidRequestError, match="fusion"):
        await hybrid.search(TENANT_A, "refund", fusion="max")


async def test_a_collection_made_by_the_old_schema_is_refused_clearly(tmp_path: Path) -> None:
    """Old data dirs hold a dense-only collection: ragserve must say what to do, not crash.

    Local mode only: that is where such collections were made (the Edge store's
    refusal of a shard of another size is in the contract tests).
    """
    store = QdrantVectorStore(path=str(tmp_path / "qdrant"), collection_name="test_chunks")
    store.client.create_collection(
        "test_chunks", vectors_config=models.VectorParams(size=384, distance=models.Distance.COSINE)
    )
    with pytest.raises(RetrievalError, match="re-ingest"):
        await store.ensure_ready(384)
    await store.close()


async def test_concurrent_queries_share_model_calls_and_match_one_by_one(
    embedder: SentenceTransformerEmbedder,
) -> None:
    queries = [f"question number {i} about refunds and parcels" for i in range(12)]
    batcher = QueryEmbedder(embedder.embed_queries, window_s=0.02, max_batch=32)
    together = await asyncio.gather(*(batcher.embed(q) for q in queries))
    assert batcher.calls < len(queries)
    for query, vector in zip(queries, together, strict=True):
        np.testing.assert_allclose(vector, embedder.embed_query(query), atol=1e-5)
    await batcher.close()
