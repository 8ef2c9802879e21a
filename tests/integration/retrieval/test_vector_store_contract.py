"""The ``VectorStore`` contract, one test body per behaviour, run on every embedded engine.

Qdrant Edge (in a child process, the default, and in this one) and qdrant-client's
local mode run here; a Qdrant server does not (none is
available to the test run), so ``QdrantVectorStore(url=...)`` is covered only through
the code it shares with local mode. Vectors are random unit vectors: the contract is
about the store, not the embedder.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING

import numpy as np
import pytest

from retrieval.errors import RetrievalError, VectorStoreUnavailableError
from retrieval.types import Fusion, SearchMode
from retrieval.vector_store import ChunkPoint
from tests.integration.retrieval.conftest import ENGINES, make_store

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from retrieval.vector_store import VectorStore

DIM = 16
TENANT_A = "aaaaaaaa-0000-0000-0000-000000000001"
TENANT_B = "bbbbbbbb-0000-0000-0000-000000000002"
RNG = np.random.default_rng(7)


def unit(seed: int) -> np.ndarray:
    vector = np.random.default_rng(seed).normal(size=DIM).astype(np.float32)
    return vector / np.linalg.norm(vector)


def points(
    tenant: str, document: str, texts: list[str], *, collection: str = "default", seed: int = 0
) -> list[ChunkPoint]:
    return [
        ChunkPoint(tenant, collection, document, f"{document}.txt", i, text, unit(seed + i))
        for i, text in enumerate(texts)
    ]


@pytest.fixture(params=ENGINES)
async def ready(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[VectorStore]:
    store = make_store(request.param, tmp_path)
    await store.ensure_ready(DIM)
    yield store
    await store.close()


async def test_dense_search_finds_the_nearest_chunk_of_the_tenant_only(ready: VectorStore) -> None:
    await ready.upsert(points(TENANT_A, "doc-a", [f"alpha {i}" for i in range(5)], seed=100))
    await ready.upsert(points(TENANT_B, "doc-b", [f"beta {i}" for i in range(5)], seed=100))
    found = await ready.search(TENANT_A, unit(102), 3)
    assert found[0].hit.position == 2
    assert all(c.hit.document_id == "doc-a" for c in found)
    assert found[0].dense_score == pytest.approx(1.0, abs=1e-5)
    assert found[0].vector.shape == (DIM,)
    scores = [c.hit.score for c in found]
    assert scores == sorted(scores, reverse=True)


async def test_collection_and_score_floor_narrow_a_search(ready: VectorStore) -> None:
    await ready.upsert(points(TENANT_A, "doc-1", ["one", "two"], collection="x", seed=1))
    await ready.upsert(points(TENANT_A, "doc-2", ["three", "four"], collection="y", seed=3))
    found = await ready.search(TENANT_A, unit(1), 10, collection="y")
    assert {c.hit.collection for c in found} == {"y"}
    floored = await ready.search(TENANT_A, unit(1), 10, score_floor=0.999)
    assert [c.hit.text for c in floored] == ["one"]


@pytest.mark.parametrize("fusion", [Fusion.RRF, Fusion.DBSF])
async def test_sparse_and_hybrid_rank_by_words(ready: VectorStore, fusion: Fusion) -> None:
    texts = ["the parcel arrives tomorrow", "refunds take five days", "reset your password"]
    await ready.upsert(points(TENANT_A, "doc", texts, seed=10))
    sparse = await ready.search(TENANT_A, unit(99), 2, text="refund", mode=SearchMode.SPARSE)
    assert [c.hit.text for c in sparse] == ["refunds take five days"]
    hybrid = await ready.search(
        TENANT_A, unit(12), 3, text="refund", mode=SearchMode.HYBRID, fusion=fusion
    )
    assert {c.hit.text for c in hybrid[:2]} == {"refunds take five days", "reset your password"}
    # No word to match: sparse finds nothing, hybrid is its dense half.
    assert await ready.search(TENANT_A, unit(12), 3, text="!!", mode=SearchMode.SPARSE) == []
    dense_half = await ready.search(TENANT_A, unit(12), 3, text="!!", mode=SearchMode.HYBRID)
    assert dense_half[0].hit.text == "reset your password"


async def test_hybrid_floor_holds_chunks_to_their_dense_cosine(ready: VectorStore) -> None:
    await ready.upsert(points(TENANT_A, "doc", ["refund policy", "refund form"], seed=20))
    found = await ready.search(
        TENANT_A, unit(20), 5, score_floor=0.999, text="refund", mode=SearchMode.HYBRID
    )
    assert [c.hit.text for c in found] == ["refund policy"]


async def test_the_sparse_idf_counts_the_searching_tenants_chunks_only(
    ready: VectorStore,
) -> None:
    """Guards the cross-tenant IDF leak: tenant B's BM25 scores must not move when tenant A
    adds chunks holding a word, or B could count A's chunks holding it by probing."""
    b_texts = ["zyxquartz refund", "refund policy", "shipping rules", "refund"]
    await ready.upsert(points(TENANT_B, "doc-b", b_texts, seed=30))
    await ready.upsert(points(TENANT_A, "doc-a0", ["unrelated words"], seed=40))
    query = "zyxquartz refund"

    async def b_scores() -> dict[str, float]:
        found = await ready.search(TENANT_B, unit(1), 10, text=query, mode=SearchMode.SPARSE)
        return {c.hit.chunk_id: c.hit.score for c in found}

    before = await b_scores()
    assert len(before) == 3
    await ready.upsert(points(TENANT_A, "doc-a", ["zyxquartz"] * 40 + ["refund"] * 20, seed=50))
    assert await b_scores() == before  # exactly equal, not approximately
    a_found = await ready.search(TENANT_A, unit(1), 5, text=query, mode=SearchMode.SPARSE)
    assert a_found
    assert all(c.hit.document_id == "doc-a" for c in a_found)


async def test_delete_document_keeps_the_ids_asked_and_other_tenants(ready: VectorStore) -> None:
    mine = points(TENANT_A, "doc", ["a", "b", "c"], seed=60)
    await ready.upsert(mine)
    # Same document id, other texts: point ids differ, the tenant filter keeps B's.
    await ready.upsert(points(TENANT_B, "doc", ["x", "y"], seed=60))
    assert await ready.count(TENANT_A, "doc") == 3
    await ready.delete_document(TENANT_A, "doc", keep_ids={mine[1].id})
    assert set(await ready.payloads(TENANT_A)) == {mine[1].id}
    await ready.delete_document(TENANT_A, "doc")
    assert await ready.count(TENANT_A) == 0
    assert await ready.count(TENANT_B, "doc") == 2


async def test_upsert_is_idempotent_and_payloads_carry_the_chunk(ready: VectorStore) -> None:
    batch = points(TENANT_A, "doc", [f"chunk {i}" for i in range(300)], seed=70)
    await ready.upsert(batch)
    await ready.upsert(batch[:10])
    assert await ready.count(TENANT_A) == 300
    payloads = await ready.payloads(TENANT_A, "doc")
    assert len(payloads) == 300
    first = payloads[batch[0].id]
    assert first == batch[0].payload()


async def test_points_persist_across_a_reopen(tmp_path: Path) -> None:
    for engine in ENGINES:
        store = make_store(engine, tmp_path / engine)
        await store.ensure_ready(DIM)
        await store.upsert(points(TENANT_A, "doc", ["kept"], seed=80))
        await store.close()
        again = make_store(engine, tmp_path / engine)
        await again.ensure_ready(DIM)
        assert (await again.search(TENANT_A, unit(80), 1))[0].hit.text == "kept"
        await again.close()


async def test_a_store_of_another_dimension_is_refused_clearly(tmp_path: Path) -> None:
    for engine in ENGINES:
        store = make_store(engine, tmp_path / engine)
        await store.ensure_ready(DIM)
        await store.close()
        again = make_store(engine, tmp_path / engine)
        with pytest.raises(RetrievalError, match="size"):
            await again.ensure_ready(DIM * 2)
        await again.close()


async def test_health_and_bad_calls(ready: VectorStore) -> None:
    await ready.check_health()
    with pytest.raises(ValueError, match="tenant_id"):
        await ready.search("", unit(1), 3)
    # Concurrent searches all answer (two threads, eight waiting by default).
    await ready.upsert(points(TENANT_A, "doc", [str(i) for i in range(20)], seed=90))
    results = await asyncio.gather(*(ready.search(TENANT_A, unit(90 + i), 1) for i in range(8)))
    assert [r[0].hit.position for r in results] == list(range(8))


@pytest.mark.parametrize("engine", ["edge-process", "edge"])
async def test_an_edge_store_not_opened_or_closed_is_unavailable(
    tmp_path: Path, engine: str
) -> None:
    store = make_store(engine, tmp_path)
    with pytest.raises(VectorStoreUnavailableError):
        await store.check_health()
    await store.ensure_ready(DIM)
    await store.check_health()
    await store.close()
    with pytest.raises(VectorStoreUnavailableError):
        await store.check_health()
    await store.close()  # closing twice is harmless


def test_ids_are_uuids() -> None:
    assert uuid.UUID(points(TENANT_A, "doc", ["x"])[0].id)
